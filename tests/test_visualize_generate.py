"""Pictures (vae_keras.viz.figures) and sampling/export (vae_keras.sampling.generate)."""
from __future__ import annotations

import types

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from vae_keras.io.atomic import save_png_atomic
from vae_keras.io.manifest import ManifestRow, read_manifest, write_manifest
from vae_keras.sampling import generate
from vae_keras.sampling.generate import export_samples, interpolate, reconstruct, sample_images
from vae_keras.viz.figures import boxed_grid, image_grid, interpolation_strip, latent_manifold, make_gif, plot_history


class KnownActiveDimsModel:
    """A stand-in CVAE with latent_dim 4 whose posterior means vary most in dim 3, then dim 1.

    Its decoder paints the left half of the image with sigmoid(z[3]) and the right half with
    sigmoid(z[1]), so the manifold's orientation can be checked too.
    """

    latent_dim = 4
    config = types.SimpleNamespace(image_size=8, name="fake")

    def encode(self, x):
        m = tf.reduce_mean(x, axis=[1, 2, 3])                    # (batch,)
        mean = tf.stack([0.0 * m, 2.0 * m, 0.1 * m, 5.0 * m + 1.0], axis=1)   # (batch, 4)
        return mean, tf.zeros_like(mean)

    def decode(self, z, apply_sigmoid=False):
        z = tf.convert_to_tensor(z, tf.float32)
        left = tf.tile(z[:, 3, None, None, None], (1, 8, 4, 1))  # (batch, 8, 4, 1)
        right = tf.tile(z[:, 1, None, None, None], (1, 8, 4, 1))
        logits = tf.concat([left, right], axis=2)                # (batch, 8, 8, 1)
        return tf.sigmoid(logits) if apply_sigmoid else logits


@pytest.fixture(scope="session")
def real_batch(tiny_dataset):
    from vae_keras.data.pipeline import load_split

    images, _ = load_split(tiny_dataset, "train")
    return images[:8].astype(np.float32) / 255.0                 # (8, 32, 32, 1)


# -- visualize -------------------------------------------------------------------------------
def test_image_grid_shape_and_placement(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((10, 8, 6, 1)).astype(np.float32)
    grid = image_grid(images, tmp_path / "g.png", ncols=4)
    assert grid.shape == (3 * 8 + 2, 4 * 6 + 3)                  # 3 rows, 4 cols, 1-px separators
    np.testing.assert_array_equal(grid[9:17, 7:13], images[5, ..., 0])   # row 1, col 1
    assert np.all(grid[8, :] == 0.0) and np.all(grid[:, 6] == 0.0)       # separators
    assert np.all(grid[18:, 2 * 7:] == 0.0)                      # two empty cells in the last row
    back = iio.imread(tmp_path / "g.png")
    assert back.shape == grid.shape and back.dtype == np.uint8
    np.testing.assert_allclose(back / 255.0, grid, atol=1 / 255)
    assert image_grid(np.zeros((16, 4, 4))).shape == (19, 19)    # default ncols = ceil(sqrt(n))
    assert image_grid(np.zeros((3, 4, 4)), ncols=10).shape == (4, 14)
    image_grid(images[:2], tmp_path / "t.png", titles=["a", "b"])
    assert iio.imread(tmp_path / "t.png").ndim >= 2
    with pytest.raises(ValueError, match="grayscale"):
        image_grid(np.zeros((2, 4, 4, 3)))


def _frames(tmp_path, count):
    paths = []
    for epoch in range(1, count + 1):
        p = tmp_path / f"epoch_{epoch:04d}.png"
        save_png_atomic(p, np.full((20, 30), epoch * 40, np.uint8))
        paths.append(p)
    return paths


def test_boxed_grid_outlines_each_box_inside_its_own_cell(tmp_path):
    images = np.full((3, 10, 10, 1), 0.5, np.float32)
    boxes = [[{"label": "knife", "box": [2, 3, 6, 8]}], [], [{"label": "handgun", "box": [-4, 7, 30, 30]}]]
    grid = boxed_grid(images, boxes, tmp_path / "b.png", ncols=2)                  # 2 rows: cells at x 0, 11
    assert grid.shape == (21, 21, 3) and iio.imread(tmp_path / "b.png").shape == (21, 21, 3)
    red = (grid[..., 0] == 220) & (grid[..., 1] == 30)
    cell0 = red[:10, :10]
    assert cell0[3, 2:6].all() and cell0[7, 2:6].all() and cell0[3:8, 2].all() and cell0[3:8, 5].all()
    assert not cell0[4:7, 3:5].any() and cell0.sum() == 14                           # an outline, x2/y2 exclusive
    assert not red[:10, 11:].any()                                                    # no box: untouched
    assert red[11 + 7, 0:10].all() and red[11 + 7:21, 9].all()                       # clipped to its own image
    assert not red[10, :].any() and not red[:, 10].any()                              # separators stay black
    with pytest.raises(ValueError, match="one box list per image"):
        boxed_grid(images, boxes[:2])


def test_make_gif_frames(tmp_path):
    gif = make_gif(_frames(tmp_path, 3), tmp_path / "out" / "train.gif", fps=5)
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 3 and frames.shape[1:3] == (32, 30)   # 12-px caption band under each
    one = make_gif(_frames(tmp_path, 1), tmp_path / "one.gif")
    assert iio.imread(one, index=None).shape[0] == 1
    with pytest.raises(ValueError, match="at least one frame"):
        make_gif([], tmp_path / "none.gif")
    # a long run: at most max_frames, evenly spaced, first and last kept, each captioned with its own epoch
    many = _frames(tmp_path / "many", 6)
    kept = iio.imread(make_gif(many, tmp_path / "few.gif", max_frames=3), index=None)
    every = iio.imread(make_gif(many, tmp_path / "all.gif", max_frames=None), index=None)
    assert kept.shape[0] == 3 and every.shape[0] == 6
    np.testing.assert_array_equal(kept, every[[0, 2, 5]])                   # epochs 1, 3 and 6


def test_latent_manifold_picks_most_active_dims(tmp_path):
    model = KnownActiveDimsModel()
    data = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    from vae_keras.viz.figures import most_active_dims

    assert list(most_active_dims(model, data)) == [3, 1]
    grid = latent_manifold(model, tmp_path / "m.png", n=5, data=data)
    assert grid.shape == (40, 40) and (tmp_path / "m.png").is_file()
    # horizontal axis = z[3] (left half of each tile), increasing left to right
    left_halves = grid[0:8, 0:40].reshape(8, 5, 8)[:, :, :4].mean(axis=(0, 2))
    assert np.all(np.diff(left_halves) > 0)
    # vertical axis = z[1] (right half of each tile), decreasing top to bottom
    right_halves = grid[:, 4:8].reshape(5, 8, 4).mean(axis=(1, 2))
    assert np.all(np.diff(right_halves) < 0)
    # explicit dims override the choice
    other = latent_manifold(model, None, n=3, dims=(1, 3))
    assert other.shape == (24, 24)


def test_latent_manifold_real_model(tiny_model, tmp_path):
    grid = latent_manifold(tiny_model, tmp_path / "m.png", n=4)
    assert grid.shape == (128, 128) and 0.0 <= grid.min() and grid.max() <= 1.0
    assert latent_manifold(tiny_model, None, n=3, digit_size=16).shape == (48, 48)


def test_plot_history_writes_png(tmp_path):
    history = [{"epoch": e, "loss": 500.0 / e, "recon": 495.0 / e, "kl": 5.0 + e,
                "test_loss": 520.0 / e, "test_recon": 514.0 / e, "test_kl": 6.0 + e} for e in (1, 2, 3)]
    fig = plot_history(history, tmp_path / "h.png")
    assert len(fig.axes) == 2 and (tmp_path / "h.png").stat().st_size > 1000
    plot_history([{"epoch": 1, "loss": 1.0, "recon": 0.5, "kl": 0.5}], tmp_path / "train_only.png")
    with pytest.raises(ValueError, match="empty"):
        plot_history([], tmp_path / "x.png")


def test_interpolation_strip(tiny_model, real_batch, tmp_path):
    strip = interpolation_strip(tiny_model, real_batch[0], real_batch[1], tmp_path / "s.png", steps=5)
    assert strip.shape == (32, 5 * 33 - 1) and (tmp_path / "s.png").is_file()


# -- generate ----------------------------------------------------------------------------------
def test_sample_images_deterministic_and_shaped(tiny_model):
    a = sample_images(tiny_model, 7, seed=3, batch_size=4)
    assert a.shape == (7, 32, 32, 1) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_allclose(a, sample_images(tiny_model, 7, seed=3, batch_size=64), atol=1e-6)
    assert not np.allclose(a, sample_images(tiny_model, 7, seed=4))
    assert sample_images(tiny_model, 0).shape == (0, 32, 32, 1)
    with pytest.raises(ValueError, match="temperature"):
        sample_images(tiny_model, 2, temperature=0)


def test_reconstruct_and_interpolate(tiny_model, real_batch):
    rec = reconstruct(tiny_model, real_batch)
    assert rec.shape == real_batch.shape and rec.dtype == np.float32
    path = interpolate(tiny_model, real_batch[0], real_batch[1], steps=4)
    assert path.shape == (4, 32, 32, 1)
    np.testing.assert_allclose(path[0], rec[0], atol=1e-5)       # the ends decode the posterior means
    np.testing.assert_allclose(path[-1], rec[1], atol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        interpolate(tiny_model, real_batch[0], real_batch[1], steps=1)


def test_export_writes_pngs_and_manifest(tiny_model, tmp_path):
    out = tmp_path / "export"
    rows = export_samples(tiny_model, 10, out, seed=5, batch_size=4, progress=False, labels=["knife"])
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == [f"images/sample_{i:06d}.png" for i in range(10)]     # the layout of every --format
    listed = read_manifest(out / "manifest.csv")
    assert [r.path for r in listed] == files == [r.path for r in rows]
    assert all(r.split == "generated" and r.labels == ["knife"] and r.boxes == [] for r in listed)
    assert listed[7].source == "vae:seed:5:7"
    pixels = np.stack([iio.imread(out / f) for f in files])[..., None] / 255.0
    np.testing.assert_allclose(pixels, sample_images(tiny_model, 10, seed=5), atol=1 / 255 + 1e-6)

    with pytest.raises(FileExistsError, match="overwrite"):
        export_samples(tiny_model, 3, out, progress=False, overwrite=False)
    export_samples(tiny_model, 3, out, progress=False)           # replaces the earlier export
    assert len(list(out.rglob("*.png"))) == 3 and len(read_manifest(out / "manifest.csv")) == 3


def test_export_replaces_an_export_in_the_old_layout(tiny_model, tmp_path):
    """Folders written before images/ existed (OUT/sample_*.png) are still recognised as ours."""
    out = tmp_path / "old"
    out.mkdir()
    old_rows = [ManifestRow(path=f"sample_{i:06d}.png", split="generated", source=f"vae:seed:0:{i}") for i in range(3)]
    for r in old_rows:
        save_png_atomic(out / r.path, np.zeros((32, 32), np.uint8))
    (out / ".sample_000003.png.tmp").write_bytes(b"half")       # what a killed old export left
    write_manifest(out / "manifest.csv", old_rows)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_samples(tiny_model, 2, out, progress=False, overwrite=False)
    rows = export_samples(tiny_model, 2, out, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "images/sample_000000.png", "images/sample_000001.png", "manifest.csv"]
    assert [r.path for r in read_manifest(out / "manifest.csv")] == [r.path for r in rows]


def test_export_never_overwrites_a_real_data_set(tiny_model, tiny_dataset):
    before = (tiny_dataset / "manifest.csv").read_bytes()
    with pytest.raises(FileExistsError, match="non-generated"):
        export_samples(tiny_model, 2, tiny_dataset, progress=False)
    assert (tiny_dataset / "manifest.csv").read_bytes() == before
    assert not list(tiny_dataset.rglob("sample_*.png"))


def test_killed_export_leaves_consistent_manifest(tiny_model, tmp_path, monkeypatch):
    real_png = generate.png_bytes

    def failing_png(image, *args):
        if np.array_equal(image, failing_png.ninth):
            raise OSError("disk full (simulated)")
        return real_png(image, *args)

    failing_png.ninth = sample_images(tiny_model, 16, batch_size=4)[9]
    monkeypatch.setattr(generate, "png_bytes", failing_png)
    out = tmp_path / "export"
    with pytest.raises(OSError, match="simulated"):
        export_samples(tiny_model, 16, out, batch_size=4, progress=False)
    listed = read_manifest(out / "manifest.csv")
    assert [r.path for r in listed] == [f"images/sample_{i:06d}.png" for i in range(8)]   # 2 full batches
    for r in listed:
        assert iio.imread(out / r.path).shape == (32, 32)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [r.path for r in listed]
    assert not list(out.rglob(".*.tmp"))                         # no half-written files
