"""The ``layout`` configuration: box maps, a decoder that draws where the map says, labelled exports."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.io.manifest import CLASSES
from vae_keras.config import get_config
from vae_keras.data.layouts import flip_boxes, layout_side, pack_boxes, rasterize, unpack_boxes
from vae_keras.models.cvae import build_model


def small(**kw):
    return get_config("layout", quick=False, image_size=32, batch_size=8, epochs=1, gmm_components=2, **kw)


@pytest.fixture(scope="module")
def boxed_run(tmp_path_factory):
    """40 phantoms at 32x32 (every threat boxed) and a layout run trained one epoch on them."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.training.trainer import Trainer

    root = tmp_path_factory.mktemp("layout")
    write_phantom_dataset(root / "data", n=40, size=32, seed=0, progress=False, workers=1)
    trainer = Trainer(small(), str(root / "data"), root / "run", progress=False)
    trainer.fit()
    return root / "data", root / "run", trainer


def test_rasterize_known_boxes():
    # 64x64 image -> 16x16 cells of 4 px: a box on cell edges fills whole cells, half a cell is 0.5
    maps = rasterize([[{"label": "knife", "box": [8, 4, 16, 10]}], []], [[0, 1, 0, 0], [1, 0, 0, 1]], 64)
    assert maps.shape == (2, layout_side(64), layout_side(64), len(CLASSES)) and maps.dtype == np.uint8
    knife = maps[0, :, :, CLASSES.index("knife")]
    assert knife[1, 2] == 255 and knife[1, 3] == 255 and knife[2, 2] == 128 and knife[0, 2] == 0
    assert knife.sum() == 255 * 2 + 128 * 2 and maps[0, :, :, 0].max() == 0   # nothing else drawn
    # labelled but not boxed: "anywhere", the whole channel
    assert np.all(maps[1, :, :, CLASSES.index("handgun")] == 255) and np.all(maps[1, :, :, 3] == 255)
    assert maps[1, :, :, 1].max() == 0


def test_boxes_pack_unpack_and_flip():
    boxes = [[{"label": "knife", "box": [1.0, 2.0, 5.0, 9.0]}], [], [{"label": "shuriken", "box": [0.0, 0.0, 3.0, 3.0]},
                                                                     {"label": "handgun", "box": [4.0, 4.0, 8.0, 6.0]}]]
    packed = pack_boxes(boxes)
    assert packed.shape == (3, 6)
    assert unpack_boxes(packed, [0, 1, 2]) == boxes and unpack_boxes(packed, [2]) == [boxes[2]]
    assert flip_boxes(boxes[0], 10) == [{"label": "knife", "box": [5.0, 2.0, 9.0, 9.0]}]


def test_decoder_follows_the_layout():
    model = build_model(small())
    side = layout_side(32)
    z = tf.random.normal((1, model.latent_dim), seed=3)
    empty = np.zeros((1, side, side, 4), np.float32)
    left, right = empty.copy(), empty.copy()
    left[0, 2:5, 0:3, 1] = 1.0                                        # a knife on the left
    right[0, 2:5, 5:8, 1] = 1.0                                       # the same knife on the right
    out = {k: model.decode(z, y=m).numpy()[0, :, :, 0] for k, m in (("e", empty), ("l", left), ("r", right))}
    change_l, change_r = np.abs(out["l"] - out["e"]), np.abs(out["r"] - out["e"])
    assert change_l.max() > 1e-4
    # a map changes the image near the map's cells: the left knife's change sits left of the right one's
    cols = np.arange(32)
    assert (change_l.sum(0) * cols).sum() / change_l.sum() < (change_r.sum(0) * cols).sum() / change_r.sum()
    # a label vector means "anywhere": the same as a map of ones
    vec = model.decode(z, y=tf.constant([[0.0, 1.0, 0.0, 0.0]])).numpy()
    ones = np.zeros((1, side, side, 4), np.float32)
    ones[..., 1] = 1.0
    np.testing.assert_allclose(vec, model.decode(z, y=ones).numpy(), atol=1e-6)
    # and the encoder sees the map
    x = tf.random.uniform((1, 32, 32, 1), seed=4)
    assert np.abs(model.encode(x, y=left)[0].numpy() - model.encode(x, y=right)[0].numpy()).max() > 1e-6


def test_layout_needs_a_conditional_resnet():
    with pytest.raises(ValueError, match="layout"):
        get_config("sigma", quick=False, layout=True)
    with pytest.raises(ValueError, match="layout"):
        get_config("seed", quick=False, conditional=True, layout=True)


def test_pipeline_flips_the_layout_with_its_image():
    from vae_keras.data.pipeline import dataset_from_arrays

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 1)).astype(np.uint8)
    def block_means(a):  # (n, 32, 32, 1) -> (n, 8, 8): a map that is a function of the image, flip included
        return a.reshape(len(a), 8, 4, 8, 4).mean(axis=(2, 4))

    maps = np.repeat(np.rint(block_means(images.astype(np.float64)))[..., None], 4, axis=-1).astype(np.uint8)
    ds = dataset_from_arrays(images, maps, batch_size=16, shuffle=False, flip=True, seed=1, with_labels=True)
    x, y = next(iter(ds))
    x, y = x.numpy(), y.numpy()
    flipped = [not np.allclose(x[i], images[i] / 255.0) for i in range(16)]
    assert 0 < sum(flipped) < 16 and y.dtype == np.float32 and y.max() <= 1.0
    np.testing.assert_allclose(y[..., 0], block_means(x), atol=0.6 / 255)    # still its own image's map
    np.testing.assert_allclose(y[..., 0], y[..., 3])


def test_layout_run_samples_with_boxes_and_exports_yolo(boxed_run, tmp_path):
    from vae_keras.training.checkpoint import load_run
    from vae_keras.sampling.export import export_run
    from vae_keras.sampling.generate import sample_with_boxes
    from vae_keras.samplers import load_sampler
    from vae_keras.training.run import open_run

    data, run, trainer = boxed_run
    assert trainer.train_conditions.shape == (len(trainer.train_images), 8, 8, 4)
    # the test split is conditioned on its own maps, so the test loss is finite
    assert np.isfinite(trainer.history[-1]["test_loss"])
    _, model = load_run(run)
    sampler = load_sampler(run, model)
    assert sampler.layout_boxes is not None and len(sampler.layout_labels) == len(trainer.train_images)

    images, boxes = sample_with_boxes(model, 6, seed=2, labels=["knife"], sampler=sampler)
    assert images.shape == (6, 32, 32, 1) and np.all(np.isfinite(images))
    assert all(b and all(x["label"] == "knife" for x in b) for b in boxes)
    again, boxes2 = sample_with_boxes(model, 6, seed=2, labels=["knife"], sampler=sampler, batch_size=4)
    np.testing.assert_allclose(images, again, atol=1e-5)
    assert boxes2 == boxes

    rows = export_run(open_run(run), 4, tmp_path / "yolo", fmt="yolo", labels=["handgun"])
    assert all(r.labels == ["handgun"] and r.boxes and r.boxes[0]["label"] == "handgun" for r in rows)
    label_files = sorted((tmp_path / "yolo" / "labels").glob("*.txt"))
    assert len(label_files) == 4 and all(f.read_text().startswith("0 ") for f in label_files)


def test_layout_sampler_falls_back_for_an_unseen_combination(boxed_run):
    from vae_keras.training.checkpoint import load_run
    from vae_keras.samplers import load_sampler

    _, run, _ = boxed_run
    _, model = load_run(run)
    sampler = load_sampler(run, model)
    every = np.ones((3, 4), np.float32)                               # all four threats: not in 40 phantoms
    seen = {tuple(int(v) for v in row) for row in sampler.layout_labels}
    assert (1, 1, 1, 1) not in seen
    z, boxes = sampler.sample_layouts(3, labels=every, seed=0)
    assert z.shape == (3, model.latent_dim) and np.all(np.isfinite(z))
    present = {c for c in CLASSES if sampler.layout_labels[:, CLASSES.index(c)].any()}
    assert all({b["label"] for b in bs} == present for bs in boxes)
