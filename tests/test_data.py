"""The tf.data input pipeline (vae_keras.data.pipeline): shapes, ranges, determinism, caches, errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from vae_keras.io.atomic import save_png_atomic
from vae_keras.io.manifest import ManifestRow, write_manifest
from vae_keras.data.pipeline import load_split, make_dataset, tfrecord_cache


def _epoch(ds):
    return [b.numpy() if not isinstance(b, tuple) else tuple(t.numpy() for t in b) for b in ds]


def test_load_split_shapes_and_labels(tiny_dataset):
    images, labels = load_split(tiny_dataset, "train")
    assert images.shape == (16, 32, 32, 1) and images.dtype == np.uint8
    assert labels.shape == (16, 4) and labels.dtype == np.float32
    assert labels[0].sum() == 0 and labels[1].sum() >= 1        # odd rows carry labels
    test_images, _ = load_split(tiny_dataset, "test")
    assert test_images.shape == (8, 32, 32, 1)


def test_load_split_resizes(tiny_dataset):
    images, _ = load_split(tiny_dataset, "test", image_size=16)
    assert images.shape == (8, 16, 16, 1) and images.dtype == np.uint8
    full, _ = load_split(tiny_dataset, "test")
    # antialiased downsampling keeps the mean brightness
    assert abs(images.mean() - full.mean()) < 3.0


def test_dataset_shapes_dtype_range_and_batch_count(tiny_dataset):
    ds = make_dataset(tiny_dataset, "train", image_size=32, batch_size=5)
    batches = _epoch(ds)
    assert len(batches) == 4                                      # 16 = 5 + 5 + 5 + 1
    assert [len(b) for b in batches] == [5, 5, 5, 1]
    for b in batches:
        assert b.dtype == np.float32 and b.shape[1:] == (32, 32, 1)
        np.testing.assert_allclose(b * 255.0, np.round(b * 255.0), atol=1e-3)   # 8-bit levels / 255
        assert b.max() > 0.85                                     # the bright background: scaled once, not twice
    dropped = _epoch(make_dataset(tiny_dataset, "train", image_size=32, batch_size=5, drop_remainder=True))
    assert len(dropped) == 3


def test_unshuffled_matches_decoded_pixels(tiny_dataset):
    images, _ = load_split(tiny_dataset, "train")
    x = np.concatenate(_epoch(make_dataset(tiny_dataset, image_size=32, batch_size=4, shuffle=False)))
    np.testing.assert_allclose(x, images / 255.0, atol=1e-6)


def test_shuffle_is_deterministic_per_seed(tiny_dataset):
    def order(seed):
        return np.concatenate(_epoch(make_dataset(tiny_dataset, image_size=32, batch_size=4, seed=seed)))

    a, b, c = order(0), order(0), order(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ds = make_dataset(tiny_dataset, image_size=32, batch_size=16, seed=0)
    e1, e2 = _epoch(ds), _epoch(ds)                               # a new order every epoch
    assert not np.array_equal(e1[0], e2[0])
    np.testing.assert_allclose(np.sort(e1[0].ravel()), np.sort(e2[0].ravel()))


def test_flip_only_when_enabled(tiny_dataset):
    plain = _epoch(make_dataset(tiny_dataset, image_size=32, batch_size=16, shuffle=False))[0]
    same = _epoch(make_dataset(tiny_dataset, image_size=32, batch_size=16, shuffle=False, flip=False))[0]
    np.testing.assert_array_equal(plain, same)
    flipped = _epoch(make_dataset(tiny_dataset, image_size=32, batch_size=16, shuffle=False, flip=True))[0]
    mirrored = np.array([np.array_equal(f, p[:, ::-1]) for f, p in zip(flipped, plain)])
    unchanged = np.array([np.array_equal(f, p) for f, p in zip(flipped, plain)])
    assert np.all(mirrored | unchanged)                           # each image flipped or untouched
    assert 0 < mirrored.sum() < 16                                # roughly half of them flipped
    again = _epoch(make_dataset(tiny_dataset, image_size=32, batch_size=16, shuffle=False, flip=True))[0]
    np.testing.assert_array_equal(flipped, again)                 # seeded


def test_with_labels(tiny_dataset):
    _, labels = load_split(tiny_dataset, "train")
    batches = _epoch(make_dataset(tiny_dataset, image_size=32, batch_size=8, shuffle=False, with_labels=True))
    x, y = batches[0]
    assert x.shape == (8, 32, 32, 1) and y.shape == (8, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)


def test_tfrecord_cache_matches_memory(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    shards = tfrecord_cache(data, "train", 32, num_shards=3)   # 3 shards: exercises the interleave
    assert len(shards) == 3 and all(s.startswith(str(data / ".cache")) for s in shards)
    assert tfrecord_cache(data, "train", 32) == shards           # written once, then reused
    for kwargs in (dict(shuffle=False), dict(shuffle=True, seed=3, flip=True)):
        mem = _epoch(make_dataset(data, image_size=32, batch_size=5, with_labels=True, **kwargs))
        rec = _epoch(make_dataset(data, image_size=32, batch_size=5, with_labels=True, cache="tfrecord",
                                  shuffle_buffer=16, **kwargs))
        assert len(mem) == len(rec)
        for (xm, ym), (xr, yr) in zip(mem, rec):
            np.testing.assert_array_equal(xm, xr)
            np.testing.assert_array_equal(ym, yr)
    assert not [p for p in (data / ".cache").iterdir() if p.name.startswith(".")]   # no temp folders


def test_missing_folder_and_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*phantoms"):
        make_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest.csv"):
        load_split(tmp_path / "empty", "train")


def test_empty_split_error(tmp_path):
    save_png_atomic(tmp_path / "train" / "a.png", np.zeros((8, 8), np.uint8))
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="train/a.png", split="train")])
    with pytest.raises(ValueError, match="'test'.*no images.*'train'"):
        load_split(tmp_path, "test")


def test_bad_arguments(tiny_dataset):
    with pytest.raises(ValueError, match="cache"):
        make_dataset(tiny_dataset, cache="disk")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(tiny_dataset, batch_size=0)


def test_missing_listed_image_error(tmp_path):
    save_png_atomic(tmp_path / "train" / "a.png", np.zeros((8, 8), np.uint8))
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="train/a.png", split="train"),
                                               ManifestRow(path="train/gone.png", split="train")])
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load_split(tmp_path, "train")


def test_an_epoch_is_a_pure_function_of_seed_and_epoch(tiny_dataset):
    """What exact resume relies on: epoch k's batches do not depend on earlier iterations."""
    from vae_keras.data.pipeline import make_dataset

    def batches(epoch):
        ds = make_dataset(tiny_dataset, image_size=32, batch_size=4, flip=True, seed=5, epoch=epoch)
        return np.concatenate([b.numpy() for b in ds])

    first = batches(2)
    np.testing.assert_array_equal(first, batches(2))
    assert not np.array_equal(first, batches(3))
