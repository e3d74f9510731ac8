"""The input pipeline: a prepared data set -> batches of float32 images in [0, 1].

Why it looks the way it does:

- Every PNG is decoded exactly once (:func:`load_split`) and kept as ``uint8``: a quarter of
  the memory of float32, and no per-epoch decoding.
- The set is cached either in memory (``from_tensor_slices`` on the decoded array) or, for
  sets that do not fit, as TFRecord shards of raw ``uint8`` pixels written once under
  ``DATA/.cache/`` and read back in parallel with ``interleave``.
- Shuffling happens on single examples, everything else (parse, cast, scale, flip) on whole
  *batches*: on a GPU host that is a handful of big ops per step instead of thousands of tiny
  ones, so the pipeline is never the bottleneck (``benchmarks/pipeline.py`` measures it).
- Everything random is seeded, so the same ``seed`` gives the same batches, epoch after epoch.

Example:
    >>> ds = make_dataset("DATA", "train", image_size=64, batch_size=32)
    >>> x = next(iter(ds))        # (32, 64, 64, 1) float32 in [0, 1]
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike, atomic_write_text
from vae_keras.io.manifest import CLASSES, MANIFEST, split_rows

CACHE_DIR = ".cache"
_CACHE_DONE = "done.json"
_SHARD_BYTES = 128 * 2 ** 20          # aim for ~128 MiB per TFRecord shard
_TFRECORD_SHUFFLE_BUFFER = 16_384     # examples; a TFRecord-cached set is assumed not to fit


# -- decoding ----------------------------------------------------------------------------------
def _read_gray(path: Path) -> np.ndarray:
    """One PNG as a (H, W) uint8 array (16-bit files are reduced to their top 8 bits)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            return (np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.asarray(im.convert("L"), np.uint8)


def _resize_uint8(images: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """Antialiased resize of (n, H, W) uint8 images to (n, size, size, 1) uint8, in chunks."""
    out = np.empty((len(images), size, size, 1), np.uint8)
    for i in range(0, len(images), chunk):
        x = tf.convert_to_tensor(images[i:i + chunk, ..., None], tf.float32)   # (chunk, H, W, 1)
        y = tf.image.resize(x, (size, size), method="bilinear", antialias=True)  # (chunk, S, S, 1)
        out[i:i + chunk] = np.clip(np.rint(y.numpy()), 0, 255).astype(np.uint8)
    return out


def load_split(data_dir: PathLike, split: str, image_size: Optional[int] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Decode every image of one split of a prepared data set, once.

    Args:
        data_dir: a prepared data set (``train/``, ``test/``, ``manifest.csv``).
        split: ``"train"`` or ``"test"`` (any split named in the manifest).
        image_size: side to resize to (antialiased), so that one prepared 224x224 set can
            train at 64x64; ``None`` keeps the files' size (they must then all agree).

    Returns:
        ``(images, labels)``: ``(n, S, S, 1)`` uint8 and ``(n, len(CLASSES))`` float32
        multi-hot, in manifest order.

    Raises:
        FileNotFoundError: no such folder, no manifest, or a listed image is missing.
        ValueError: the split has no images, or sizes differ and ``image_size`` is None.
    """
    data_dir = Path(data_dir)
    if image_size is not None and int(image_size) < 1:
        raise DataError(f"image_size must be a positive integer or None, got {image_size!r}")
    rows = split_rows(data_dir, split)
    labels = np.stack([r.multi_hot() for r in rows]).astype(np.float32)   # (n, 4)

    paths = [data_dir / row.path for row in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) listed in {data_dir / MANIFEST} are missing, "
                                f"e.g. {missing[0]}: re-create the data set, or remove their rows")
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:   # zlib releases the GIL
        arrays = list(pool.map(_read_gray, paths, chunksize=64))
    shapes = {a.shape for a in arrays}
    if image_size is None:
        if len(shapes) != 1:
            raise DataError(f"split {split!r} of {data_dir} mixes image sizes {sorted(shapes)[:4]}: "
                            "pass image_size= to resize them to one size")
        (h, w), = shapes
        if h != w:
            raise DataError(f"images of {data_dir} are {h}x{w}, not square: pass image_size=")
        return np.stack(arrays)[..., None], labels                           # (n, S, S, 1)

    size = int(image_size)
    images = np.empty((len(arrays), size, size, 1), np.uint8)
    for shape in shapes:  # resize in groups of equal size: one big op per group
        idx = [i for i, a in enumerate(arrays) if a.shape == shape]
        group = np.stack([arrays[i] for i in idx])                            # (k, H, W)
        images[idx] = group[..., None] if shape == (size, size) else _resize_uint8(group, size)
    return images, labels


# -- the TFRecord cache ------------------------------------------------------------------------
def fingerprint(data_dir: Path, split: str, size: int) -> str:
    """A short hash of the manifest and the split's files (size, mtime): a changed set gets a new cache."""
    h = hashlib.sha256()
    h.update((data_dir / MANIFEST).read_bytes())
    h.update(f"{split}|{size}".encode())
    for row in split_rows(data_dir, split):
        st = (data_dir / row.path).stat()
        h.update(f"{row.path}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def tfrecord_cache(data_dir: PathLike, split: str, image_size: int,
                   num_shards: Optional[int] = None) -> List[str]:
    """The TFRecord shards of one split at one size, written on first use.

    Example ``i`` goes to shard ``i % num_shards``, so reading the shards round-robin gives back
    the manifest order (and the exact batches of the in-memory cache for the same seed). The
    shards are written to a temporary folder that is renamed into place when complete, so a
    killed writer leaves no half cache and two concurrent writers cannot mix.

    Returns:
        the shard paths, in order, under ``DATA/.cache/{split}-{size}-{fingerprint}/``.
    """
    data_dir = Path(data_dir)
    size = int(image_size)
    final = data_dir / CACHE_DIR / f"{split}-{size}-{fingerprint(data_dir, split, size)}"
    done = final / _CACHE_DONE
    if done.is_file():
        return [str(final / name) for name in json.loads(done.read_text())["shards"]]

    images, labels = load_split(data_dir, split, image_size=size)
    n = len(images)
    if num_shards is None:
        num_shards = max(1, min(64, math.ceil(images.nbytes / _SHARD_BYTES)))
    num_shards = max(1, min(int(num_shards), n))
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = [f"shard-{j:05d}-of-{num_shards:05d}.tfrecord" for j in range(num_shards)]
    try:
        for j, name in enumerate(names):
            with tf.io.TFRecordWriter(str(tmp / name)) as writer:
                for i in range(j, n, num_shards):
                    example = tf.train.Example(features=tf.train.Features(feature={
                        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[images[i].tobytes()])),
                        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=labels[i])),
                    }))
                    writer.write(example.SerializeToString())
        atomic_write_text(tmp / _CACHE_DONE, json.dumps({"shards": names, "n": n, "size": size}))
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same cache first: use theirs
            if not done.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [str(final / name) for name in names]


def _parse_batch(serialized, size: int):
    """A batch of serialized examples -> (batch, S, S, 1) uint8 images and (batch, 4) labels."""
    feats = tf.io.parse_example(serialized, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.FixedLenFeature([len(CLASSES)], tf.float32),
    })
    images = tf.io.decode_raw(feats["image"], tf.uint8)                     # (batch, S*S)
    return tf.reshape(images, (-1, size, size, 1)), feats["labels"]         # (batch, S, S, 1)


# -- the data set ------------------------------------------------------------------------------
def _epoch_seed(seed: int, epoch: Optional[int]) -> Tuple[int, bool]:
    """``(seed, reshuffle_each_iteration)``: with an epoch, its order is a pure function of both."""
    if epoch is None:
        return int(seed), True
    return int(seed) * 1_000_003 + int(epoch), False


def _finish(ds: tf.data.Dataset, flip: bool, seed: int, reshuffle: bool, with_labels: bool) -> tf.data.Dataset:
    """Per-batch work on uint8 ``(images, labels)`` batches: scale to [0, 1], flip, prefetch."""
    autotune = tf.data.AUTOTUNE

    def to_float(x, y):
        if y.dtype == tf.uint8:                                               # layout maps (batch, L, L, C)
            y = tf.cast(y, tf.float32) * (1.0 / 255.0)
        return tf.cast(x, tf.float32) * (1.0 / 255.0), y                     # (batch, S, S, 1) in [0, 1]

    def to_float_flipped(pair, flip_seed):
        x, y = to_float(*pair)
        mask = tf.random.stateless_uniform((tf.shape(x)[0], 1, 1, 1), seed=flip_seed) < 0.5
        if y.shape.rank == 4:                                                 # a layout flips with its image
            y = tf.where(mask, tf.reverse(y, axis=[2]), y)
        return tf.where(mask, tf.reverse(x, axis=[2]), x), y                  # flipped along the width

    if flip:  # one stateless seed per batch, drawn from a seeded stream
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(to_float_flipped, num_parallel_calls=autotune)
    else:
        ds = ds.map(to_float, num_parallel_calls=autotune)
    if not with_labels:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(autotune)


def dataset_from_arrays(images: np.ndarray, labels: Optional[np.ndarray] = None, batch_size: int = 32,
                        shuffle: bool = True, flip: bool = False, seed: int = 0, epoch: Optional[int] = None,
                        with_labels: bool = False, drop_remainder: bool = False) -> tf.data.Dataset:
    """The in-memory pipeline on already decoded ``uint8`` images (n, S, S, 1).

    ``labels`` may also be uint8 layout maps (n, L, L, C) (:mod:`vae_keras.data.layouts`): they are
    scaled to [0, 1] and flipped with their images.

    The training loop decodes a split once with :func:`load_split` and calls this every epoch
    with ``epoch=k``: that epoch's order and flips then depend only on ``(seed, k)``, so a run
    resumed at epoch k sees exactly the batches the uninterrupted run saw.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if labels is None:
        labels = np.zeros((len(images), len(CLASSES)), np.float32)
    seed, reshuffle = _epoch_seed(seed, epoch)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=reshuffle)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return _finish(ds, flip, seed, reshuffle, with_labels)


def make_dataset(data_dir: PathLike, split: str = "train", image_size: int = 64, batch_size: int = 32,
                 shuffle: bool = True, flip: bool = False, seed: int = 0, with_labels: bool = False,
                 cache: str = "memory", drop_remainder: bool = False,
                 shuffle_buffer: Optional[int] = None, epoch: Optional[int] = None) -> tf.data.Dataset:
    """Batches of one split as float32 images in [0, 1], ready for ``model.fit`` or a custom loop.

    Args:
        data_dir: a prepared data set.
        split: which split (``train``/``test``).
        image_size: side of the images fed to the model (files are resized once if different).
        batch_size: images per batch.
        shuffle: shuffle examples (seeded, a new order each epoch).
        flip: random horizontal flips (X-ray bags have no preferred left/right), per image.
        seed: makes the order and the flips reproducible.
        with_labels: yield ``(images, labels)`` with labels (batch, 4) multi-hot.
        cache: ``"memory"`` (decoded uint8 array) or ``"tfrecord"`` (shards under ``DATA/.cache``,
            for sets larger than RAM).
        drop_remainder: drop a last, smaller batch (needed for fixed-shape XLA steps).
        shuffle_buffer: examples in the shuffle buffer; default the whole set in memory,
            16384 with TFRecords.
        epoch: when given, one epoch whose order and flips are a pure function of ``(seed, epoch)``
            (for exact resume); otherwise every iteration of the data set reshuffles.

    Returns:
        a ``tf.data.Dataset`` of (batch, S, S, 1) float32, or of ``(images, labels)``.
    """
    if cache not in ("memory", "tfrecord"):
        raise ValueError(f"cache must be 'memory' or 'tfrecord', got {cache!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    size = int(image_size)

    if cache == "memory":
        images, labels = load_split(data_dir, split, image_size=size)        # (n, S, S, 1) uint8
        if shuffle_buffer is None:
            return dataset_from_arrays(images, labels, batch_size, shuffle, flip, seed, epoch,
                                       with_labels, drop_remainder)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        shards = tfrecord_cache(data_dir, split, size)
        files = tf.data.Dataset.from_tensor_slices(shards)
        # round-robin over the shards (block_length=1) restores the manifest order
        ds = files.interleave(tf.data.TFRecordDataset, cycle_length=len(shards), block_length=1,
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    seed, reshuffle = _epoch_seed(seed, epoch)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or _TFRECORD_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=reshuffle)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if cache == "tfrecord":
        ds = ds.map(lambda s: _parse_batch(s, size), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, flip, seed, reshuffle, with_labels)
