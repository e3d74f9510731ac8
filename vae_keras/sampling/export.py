"""``generate RUN --format yolo|voc|csv``: make N labelled images from a trained run and export them.

The images come from one of four sources, chosen by the arguments: plain samples (a ``layout``
run's carry the boxes of their layouts), hybrid (real threats of a prepared set projected into
generated benign bags, :func:`vae_keras.sampling.tip.hybrid_samples`), or composite (generated
threats of an object VAE, :mod:`vae_keras.sampling.objects`). The files are written by
:func:`vae_keras.io.detection.export_detection`.

Example:
    >>> run = open_run("runs/cond")
    >>> rows = export_run(run, 500, "export/", fmt="yolo", labels=["knife"], tip_data="data/phantoms")
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from vae_keras.errors import DataError
from vae_keras.io.atomic import PathLike
from vae_keras.io.detection import FORMATS, check_boxes, export_detection
from vae_keras.io.manifest import ManifestRow
from vae_keras.sampling import tip
from vae_keras.sampling.generate import fallback_notes, per_sample_labels, sample_with_boxes
from vae_keras.sampling.objects import composite_samples, open_objects
from vae_keras.training.run import as_run


def export_run(run, n: int, out_dir: PathLike, fmt: str = "yolo", labels=None,
               tip_data: Optional[PathLike] = None, seed: int = 0, temperature: float = 1.0,
               batch_size: int = 64, overwrite: bool = True, tip_split: str = "train",
               objects=None) -> List[ManifestRow]:
    """``generate RUN --n N --out DIR --format FMT [--label CLASS] [--tip DATA] [--objects OBJECTS]`` in one call.

    Args:
        run: a trained :class:`~vae_keras.training.run.Run` (its model and sampler are used as they
            are), or a run folder (opened here).
        labels: the classes every image must contain (``["knife"]``; ``[]`` for benign) or one
            list per image; ``None``: benign.
        tip_data: a prepared, boxed data set (phantoms or ``prepare`` output): hybrid mode, real
            threats of its ``tip_split`` projected into generated benign bags, exact boxes.
            Without it, images are pure VAE samples: those of a run whose sampler draws layouts (a
            ``layout`` run's mixture, a ``boxes`` run's box-conditioned prior) carry the boxes of their
            layouts (any format); other runs' have image-level labels only (``csv``, unless benign).
        objects: a threat generator (an object run: a :class:`Run` or its folder,
            :mod:`vae_keras.sampling.objects`): composite mode, *generated* threats projected into
            generated benign bags, exact boxes (instead of ``tip_data``'s real ones).

    Returns:
        the manifest rows written to ``out_dir/manifest.csv``.
    """
    if fmt not in FORMATS:
        raise DataError(f"format must be one of {FORMATS}, got {fmt!r}")
    per = per_sample_labels(labels, int(n))
    if tip_data is not None and objects is not None:
        raise DataError("choose the real threats of tip_data or the generated ones of objects, not both")
    run = as_run(run)
    if tip_data is None and objects is None and run.sampler.conditions_on != "boxes":  # fail before any work
        check_boxes(per, [[] for _ in per], fmt)
    model, sampler, name = run.model, run.sampler, run.name
    if objects is not None:
        objects = open_objects(objects)
        images, _, boxes = composite_samples(model, objects.model, per, seed=seed, temperature=temperature,
                                             bag_sampler=sampler, object_sampler=objects.sampler,
                                             batch_size=batch_size, object_name=objects.name)
        sources = [f"composite:vae:{name}:{seed}:{i}+objects:{objects.name}" for i in range(len(per))]
    elif tip_data is not None:
        crops = tip.crops_from_prepared(tip_data, tip_split, image_size=run.config.image_size)
        images, _, boxes = tip.hybrid_samples(model, per, crops, seed=seed, temperature=temperature,
                                              sampler=sampler, batch_size=batch_size)
        sources = [f"hybrid:vae:{name}:{seed}:{i}+tip:{Path(tip_data).name}" for i in range(len(per))]
    else:
        images, boxes = sample_with_boxes(model, int(n), temperature=temperature, seed=seed, batch_size=batch_size,
                                          labels=per, sampler=sampler)   # boxes: a layout run's layouts
        sources = [f"vae:{name}:{seed}:{i}" for i in range(len(per))]
    # the bags of the hybrid and composite modes are asked for benign: only pure samples can fall back
    notes = fallback_notes(sampler, per, len(per)) if tip_data is None and objects is None else None
    return export_detection(out_dir, images, boxes, labels=per, fmt=fmt, sources=sources, overwrite=overwrite,
                            batch_size=batch_size, fallbacks=notes)
