"""Using a trained VAE: sample, reconstruct, interpolate, and export a synthetic data set.

Why the export is built the way it is: decoding is a few big tensor ops, PNG encoding is
per-image CPU work. A thread pool encodes and writes batch k while the model decodes batch
k+1 (both TensorFlow and Pillow's zlib release the GIL), so an export runs at about the speed
of the decoder alone. The folder is the one safe output folder
(:class:`vae_keras.io.folder.OutputFolder`): PNGs are written under temporary names
(``images/.sample_000012.png.tmp``); when a whole batch is written it is flushed to disk,
listed in the manifest, and renamed into place, so a killed export leaves only complete PNGs
that the manifest lists (plus hidden temporary files, which the next export removes).

Layout, the same as ``generate --format csv|yolo|voc``: ``OUT/images/sample_000000.png`` ...
and ``OUT/manifest.csv``.
"""
from __future__ import annotations

import collections
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from vae_keras.data.layouts import layout_side, rasterize
from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike
from vae_keras.io.detection import IMAGES_DIR
from vae_keras.io.folder import GENERATED, OutputFolder
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, ManifestRow
from vae_keras.io.progress import Progress
from vae_keras.models import encode
from vae_keras.samplers.labels import fallback_notes, label_vectors, per_sample_labels

#: A sample's path in an export folder (every format: images/ beside manifest.csv).
SAMPLE_NAME = IMAGES_DIR + "/sample_{:06d}.png"


def _check_draw(n: int, temperature: float) -> None:
    if int(n) < 0:
        raise DataError(f"n must be >= 0, got {n}")
    if not temperature > 0:
        raise DataError(f"temperature must be > 0, got {temperature}")


def _latents(model, n: int, temperature: float, seed: int, sampler=None, labels=None) -> np.ndarray:
    """The ``n`` latent draws of ``seed``: ``temperature * eps``, eps from ``default_rng(seed)``.

    All draws are made up front, so the images do not depend on ``batch_size``. A ``sampler``
    (:mod:`vae_keras.samplers`, e.g. the run's fitted Gaussian mixture) replaces the prior; given
    the requested ``labels`` (class names, see :func:`sample_images`) a fitted mixture draws
    each latent from the codes of training bags with those threats.
    """
    _check_draw(n, temperature)
    if sampler is not None:
        if labels is None:
            return np.asarray(sampler.sample(int(n), temperature=temperature, seed=seed), np.float32)
        y = label_vectors(per_sample_labels(labels, int(n)))
        return np.asarray(sampler.sample(int(n), temperature=temperature, seed=seed, labels=y), np.float32)
    eps = np.random.default_rng(seed).standard_normal((int(n), int(model.latent_dim)))
    return (eps * temperature).astype(np.float32)                # (n, latent_dim)


#: One traced decoder per model and kind, reused by every call (kept off the model so checkpoints
#: never see it; entries vanish with their model).
_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached(model, kind: str, build):
    per_model = _DECODERS.setdefault(model, {})
    if kind not in per_model:
        per_model[kind] = build()
    return per_model[kind]


def compiled_decoder(model):
    """``model.decode(z, apply_sigmoid=True)`` as one graph, traced once per model for any batch size."""
    return _cached(model, "plain", lambda: tf.function(
        lambda z: model.decode(z, apply_sigmoid=True),
        input_signature=[tf.TensorSpec((None, int(model.latent_dim)), tf.float32)], autograph=False))


def _condition_shape(model) -> tuple:
    """Shape of one condition: (C,) labels, or a layout model's (L, L, C) maps."""
    if getattr(model, "layout", False):
        side = layout_side(model.config.image_size)
        return (side, side, int(model.num_classes))
    return (int(model.num_classes),)


def _conditional_decoder(model):
    """``model.decode(z, apply_sigmoid=True, y=y)`` of a conditional model, as one graph per model."""
    return _cached(model, "conditional", lambda: tf.function(
        lambda z, y: model.decode(z, apply_sigmoid=True, y=y),
        input_signature=[tf.TensorSpec((None, int(model.latent_dim)), tf.float32),
                         tf.TensorSpec((None,) + _condition_shape(model), tf.float32)], autograph=False))


def _decode_all(model, z: np.ndarray, y: Optional[np.ndarray], batch_size: int):
    """Yield the decoded batches ``(start, probs (b, S, S, 1))`` of ``z``, conditioned on ``y`` if given."""
    if y is None:
        decode = compiled_decoder(model)
        for i in range(0, len(z), batch_size):
            yield i, decode(z[i:i + batch_size]).numpy()
    else:
        decode = _conditional_decoder(model)
        for i in range(0, len(z), batch_size):
            yield i, decode(z[i:i + batch_size], y[i:i + batch_size]).numpy()


def check_classes(model) -> None:
    """A conditional model must have been trained on this project's classes (:data:`CLASSES`)."""
    if getattr(model, "conditional", False) and int(model.num_classes) != len(CLASSES):
        raise DataError(f"this conditional run was trained with {int(model.num_classes)} classes, the data sets "
                        f"here have {len(CLASSES)} ({', '.join(CLASSES)}): its label vectors do not match; "
                        "use a run trained on a data set with these classes")


def _conditions(model, labels, n: int) -> Optional[np.ndarray]:
    """The condition vectors of a conditional model (benign when ``labels`` is None), else None.

    A layout model without layouts gets maps that say "these classes, anywhere".
    """
    if not getattr(model, "conditional", False):
        return None
    check_classes(model)
    y = label_vectors(per_sample_labels(labels, n))
    if getattr(model, "layout", False):
        side = _condition_shape(model)[0]
        y = np.ascontiguousarray(np.broadcast_to(y[:, None, None, :], (len(y), side, side, y.shape[1])))
    return y


def draw(model, n: int, temperature: float = 1.0, seed: int = 0, labels=None, sampler=None):
    """The latents, conditions and boxes of ``n`` samples: ``(z, y or None, boxes or None)``.

    A layout model with a sampler that kept its training layouts (:meth:`GMMSampler.sample_layouts`)
    gets, per sample, a training layout with the requested classes and a latent from the mixture
    component of that training bag; the layout's boxes then label the sample. A prior conditioned
    on box maps (:class:`~vae_keras.samplers.BoxDiffusionSampler`) likewise draws each latent under
    a training layout with the requested classes, whose boxes label the sample. Otherwise ``z``
    comes from :func:`_latents` and ``y`` from :func:`_conditions` (no boxes).
    """
    check_classes(model)
    if labels is not None:
        per_sample_labels(labels, int(n))                       # unknown classes: an error, whatever the model
    if sampler is not None and sampler.conditions_on == "boxes":
        _check_draw(n, temperature)
        layout_model = getattr(model, "layout", False)
        # a layout model's mixture reads no labels as benign; a box-conditioned prior as the training mix
        vectors = None if labels is None and not layout_model else label_vectors(per_sample_labels(labels, int(n)))
        z, boxes = sampler.sample_layouts(int(n), temperature=temperature, seed=seed, labels=vectors)
        if not layout_model:                                     # the decoder takes no map (box_diffusion)
            return z, _conditions(model, labels, len(z)), boxes
        y = rasterize(boxes, vectors, model.config.image_size).astype(np.float32) / 255.0   # (n, L, L, C)
        return z, y, boxes
    z = _latents(model, n, temperature, seed, sampler, labels)
    return z, _conditions(model, labels, len(z)), None


def _as_model_input(images, model, name="images") -> np.ndarray:
    """Images (n, S, S, 1) / (n, S, S) / one (S, S[, 1]) image, uint8 or [0, 1] -> (n, S, S, 1) float32."""
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    size = int(model.config.image_size)
    if x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 1 and x.shape[0] == size and x.shape[1] == size):
        x = x[None]                                              # one image
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (size, size, 1):
        raise ValueError(f"{name} must be (n, {size}, {size}, 1) for this model, got shape {np.shape(images)}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return x


def posterior_means(model, images, batch_size: int = 256) -> np.ndarray:
    """The encoder's posterior means of ``images`` ((n, S, S[, 1]), uint8 or [0, 1]) -> (n, latent_dim), in batches."""
    return encode.posterior_means(model, _as_model_input(images, model), batch_size=batch_size)   # (n, latent_dim)


def decode_latents(model, z, batch_size: int = 256, y: Optional[np.ndarray] = None) -> np.ndarray:
    """Decode latents ``z`` (m, latent_dim) to pixel means (m, S, S, 1) float32 in [0, 1], in batches,
    through the model's traced decoder (conditioned on ``y`` when given)."""
    z = np.asarray(z, np.float32)
    if len(z) == 0:
        size = int(model.config.image_size)
        return np.zeros((0, size, size, 1), np.float32)
    return np.concatenate([probs for _, probs in _decode_all(model, z, y, int(batch_size))])


def sample_images(model, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 64,
                  labels=None, sampler=None) -> np.ndarray:
    """``n`` images decoded from prior draws ``z ~ N(0, temperature^2 I)`` (or from ``sampler``).

    Deterministic: the same ``seed`` gives the same images, whatever ``batch_size``.

    Args:
        labels: the classes every sample must contain (``["knife"]``) or one list per sample.
            A conditional model is conditioned on them (default: benign bags); a fitted mixture
            ``sampler`` draws the latents of training bags with those classes (default: any bag).
        sampler: a latent sampler (:mod:`vae_keras.samplers`); default the prior.

    Returns:
        (n, S, S, 1) float32 pixel means in [0, 1].
    """
    return sample_with_boxes(model, n, temperature, seed, batch_size, labels, sampler)[0]


def sample_with_boxes(model, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 64,
                      labels=None, sampler=None):
    """:func:`sample_images` and the boxes of each sample: ``(images, boxes)``; ``boxes`` is one
    list of ``{"label", "box"}`` per image for a layout model with layouts (:func:`draw`), else None."""
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    z, y, boxes = draw(model, n, temperature, seed, labels, sampler)
    return decode_latents(model, z, int(batch_size), y), boxes


def reconstruct(model, images, batch_size: int = 64) -> np.ndarray:
    """Decode the posterior mean of each image (the VAE's deterministic reconstruction).

    Args:
        images: (n, S, S, 1) in [0, 1] (or uint8).

    Returns:
        (n, S, S, 1) float32 in [0, 1].
    """
    return decode_latents(model, posterior_means(model, images, batch_size), batch_size)


def interpolate(model, x_a, x_b, steps: int = 8) -> np.ndarray:
    """Decode ``steps`` points on the straight line between the posterior means of two images.

    Args:
        x_a, x_b: one image each, (S, S, 1), (S, S) or (1, S, S, 1).

    Returns:
        (steps, S, S, 1) float32 in [0, 1]; the first decodes ``x_a``'s mean, the last ``x_b``'s.
    """
    if int(steps) < 2:
        raise ValueError(f"steps must be >= 2 (both end points), got {steps}")
    ends = posterior_means(model, np.concatenate([_as_model_input(x_a, model, "x_a"),
                                                  _as_model_input(x_b, model, "x_b")]))
    if len(ends) != 2:
        raise ValueError("interpolate takes exactly one image for x_a and one for x_b")
    t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]    # (steps, 1)
    z = (1.0 - t) * ends[0] + t * ends[1]                        # (steps, latent_dim)
    return compiled_decoder(model)(tf.constant(z)).numpy()


def export_samples(model, n: int, out_dir: PathLike, temperature: float = 1.0, seed: int = 0,
                   batch_size: int = 64, progress: bool = True,
                   labels: Optional[Union[Sequence[str], Sequence[Sequence[str]]]] = None,
                   name: Optional[str] = None, overwrite: bool = True,
                   workers: Optional[int] = None, compress_level: int = 1, sampler=None) -> List[ManifestRow]:
    """Write ``n`` samples as a data set: ``out_dir/images/sample_000000.png`` ... and ``out_dir/manifest.csv``.

    The images are exactly ``sample_images(model, n, temperature, seed)``. The manifest uses
    the project's format (:mod:`vae_keras.io.manifest`): split ``generated``, ``source``
    ``vae:{name}:{seed}:{i}`` so each image can be regenerated; a layout model's samples carry
    the boxes of their layouts; ``fallback`` says which images' label combination was too rare
    for the sampler (:func:`fallback_notes`). A folder written before ``images/`` existed
    (``out_dir/sample_*.png``) is recognised as an earlier export and replaced.

    Args:
        labels: class names given to every sample (``["knife"]``), or one list per sample;
            default no labels. A conditional model is conditioned on them (no labels: benign), a
            fitted mixture ``sampler`` draws the latents of training bags with those classes.
        sampler: a latent sampler (:mod:`vae_keras.samplers`); default the prior.
        name: run name for ``source``; default ``model.run_name`` if set, else ``config.name``.
        overwrite: replace an earlier export in ``out_dir`` (its sample PNGs are deleted first,
            so the folder never mixes two exports); ``False`` raises
            :class:`~vae_keras.io.folder.FolderInUse` instead. A folder whose manifest lists
            non-generated images (a real data set) is never touched.
        workers: PNG-writing threads (default ``min(8, cpu_count)``).
        compress_level: zlib level of the PNGs (1: fast; 9: smallest).

    Returns:
        the manifest rows, in sample order.
    """
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    folder = OutputFolder(out_dir, GENERATED, overwrite)
    folder.check()                                               # refuse before any work
    z, y, boxes = draw(model, n, temperature, seed, labels, sampler)   # (n, latent_dim), conditions, boxes
    per_labels = per_sample_labels(labels, len(z))
    notes = fallback_notes(sampler, labels, len(z))
    run_name = name or getattr(model, "run_name", None) or model.config.name
    rows = [ManifestRow(path=SAMPLE_NAME.format(i), split="generated", labels=per_labels[i],
                        boxes=[dict(b, box=[int(round(v)) for v in b["box"]]) for b in boxes[i]] if boxes else [],
                        source=f"vae:{run_name}:{seed}:{i}", fallback=notes[i]) for i in range(len(z))]
    folder.open()

    def write_png(rel: str, image: np.ndarray) -> None:         # a worker thread
        folder.temporary(rel).write_bytes(png_bytes(image, compress_level))

    bar = Progress(progress, unit="image")
    workers = int(workers or min(8, os.cpu_count() or 1))
    pending = collections.deque()                                # (futures of one batch, end index)
    done = 0

    def finish_oldest():
        nonlocal done
        futures, end = pending.popleft()
        for future in futures:
            future.result()                                      # waits; re-raises a failed write
        folder.publish(rows[:end], [r.path for r in rows[done:end]])
        done = end                                               # the manifest lists exactly these
        bar.count(done, len(rows), "generate")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png") as pool:
        try:
            for start, probs in _decode_all(model, z, y, int(batch_size)):   # (b, S, S, 1): overlaps the writes
                futures = [pool.submit(write_png, rows[start + j].path, img) for j, img in enumerate(probs)]
                pending.append((futures, start + len(probs)))
                while pending and (len(pending) > 2 or all(f.done() for f in pending[0][0])):
                    finish_oldest()                              # at most 2 batches in flight
            while pending:
                finish_oldest()
        except BaseException:
            for futures, _ in pending:
                for future in futures:
                    future.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
            folder.discard([r.path for r in rows[done:]])        # written but never listed
            bar.done()
    return rows
