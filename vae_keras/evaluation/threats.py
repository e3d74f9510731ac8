"""How good is a threat generator? Its crops scored against the held-out real crops of an object set.

A threat generator (``train OBJ --config threats``: the ``latent`` recipe on threat crops written by
``python -m vae_keras objects``) is judged on what issue #23 asks of it:

- **class**: a small CNN trained on the object set's *real* training crops
  (:func:`vae_keras.evaluation.evaluate.threat_classifier`) finds the class asked for in each
  generated crop; the score is that rate over the CNN's own recall on the held-out real crops of
  the class (1 = as recognisable as real crops);
- **shape**: the sharpness ratio against the held-out crops (0.8-1.25 is as sharp as real) and a
  classifier two-sample test (0.5 = indistinguishable);
- **new threats, not copies**: the nearest-neighbour memorisation ratio (>= 0.9);
- **speed**: crops per second, drawing included.

Example:
    >>> scores = score_threats(open_run("runs/threats"), "data/objects64", n_per_class=100)
"""
from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np

from vae_keras.data.pipeline import load_split
from vae_keras.evaluation import metrics as M
from vae_keras.evaluation.evaluate import threat_classifier
from vae_keras.io.atomic import PathLike
from vae_keras.io.manifest import CLASSES
from vae_keras.sampling.generate import reconstruct, sample_images
from vae_keras.training.run import as_run

#: issue #23's goals for a threat generator at 64 px after 10 CPU minutes
GOALS = {"recognition_ratio_min": 0.9, "sharpness_ratio": (0.8, 1.25), "memorisation_ratio": 0.9,
         "c2st_accuracy": 0.75, "crops_per_second": 100.0}


def score_threats(run, objects_dir: PathLike, n_per_class: int = 100, seed: int = 0, folds: int = 5,
                  progress: bool = False, two_sample_steps: int = 300) -> Dict[str, object]:
    """Score a threat generator on the held-out (test) crops of the object set it was trained on.

    Args:
        run: the generator (a :class:`~vae_keras.training.run.Run` or its folder).
        objects_dir: its object set (``train/`` and ``test/`` crops with one class each).
        n_per_class: crops generated for each class the object set's test split has.
        folds, two_sample_steps: the two-sample test's folds and Adam steps per fold
            (:func:`~vae_keras.evaluation.metrics.classifier_two_sample_test`).

    Returns:
        per class ``found`` (share of generated crops the CNN calls that class), ``recall`` (the
        same on held-out real crops) and ``ratio``; the worst ratio (``recognition_ratio_min``);
        ``sharpness_ratio``, ``c2st_accuracy``, ``memorisation_ratio`` over all classes;
        ``crops_per_second``; the counts; and the autoencoder's reconstructions of the held-out crops
        (``recon_sharpness_ratio``, ``recon_psnr``): the sharpest crops the prior could ever draw, so
        they say which stage limits a generator.
    """
    run = as_run(run)
    size = int(run.config.image_size)
    train_x, _ = load_split(objects_dir, "train", image_size=size)                # (n, S, S, 1) uint8
    test_x, test_y = load_split(objects_dir, "test", image_size=size)
    classes = [c for i, c in enumerate(CLASSES) if test_y[:, i].any()]
    clf = threat_classifier(objects_dir, size, progress)
    sample_images(run.model, 2, seed=seed, labels=[classes[0]], sampler=run.sampler)   # traced once, not timed
    t0 = time.monotonic()
    generated = {c: sample_images(run.model, int(n_per_class), seed=seed + 17 * i, labels=[c], sampler=run.sampler)
                 for i, c in enumerate(classes)}                                  # (n, S, S, 1) each
    seconds = time.monotonic() - t0
    recognised = M.class_recognition(clf, generated)
    out: Dict[str, object] = {"per_class": {}, "n_per_class": int(n_per_class), "n_train": len(train_x),
                              "n_test": len(test_x), "image_size": size, "config": run.config.name,
                              "sampler": run.sampler.name, **run.sampler.settings()}
    probs = clf.predict(test_x)
    for i, c in enumerate(CLASSES):
        if c not in generated:
            continue
        has = test_y[:, i] > 0.5
        recall = float(np.mean(probs[has, i] > 0.5))
        out["per_class"][c] = {"found": recognised[c], "recall": recall,
                               "ratio": recognised[c] / recall if recall > 0 else float("nan"),
                               "n_test": int(has.sum())}
    ratios = [v["ratio"] for v in out["per_class"].values()]
    # a class the CNN never finds in real crops cannot be judged: the worst ratio is then NaN (goal not met)
    out["recognition_ratio_min"] = float(np.min(ratios)) if ratios else float("nan")
    gen = M.quantize(np.concatenate(list(generated.values())))
    real = test_x
    out["sharpness_ratio"] = M.sharpness_ratio(gen, real)
    out["memorisation_ratio"] = M.memorisation_ratio(gen, train_x, real)
    out["c2st_accuracy"] = M.classifier_two_sample_test(real, gen, folds=folds, steps=two_sample_steps, seed=seed)
    out["crops_per_second"] = len(gen) / max(seconds, 1e-9)
    recon = reconstruct(run.model, test_x)                                        # (n, S, S, 1) in [0, 1]
    out["recon_sharpness_ratio"] = M.sharpness_ratio(M.quantize(recon), real)
    out["recon_psnr"] = M.psnr(recon, real)
    return out


def goals_met(scores: Dict[str, object]) -> Dict[str, Optional[bool]]:
    """Each of :data:`GOALS` met (True/False) by ``scores``."""
    lo, hi = GOALS["sharpness_ratio"]
    return {"class recognised >= 90% of real recall, every class": scores["recognition_ratio_min"] >= 0.9,
            "sharpness ratio 0.8-1.25": lo <= scores["sharpness_ratio"] <= hi,
            "memorisation ratio >= 0.9": scores["memorisation_ratio"] >= GOALS["memorisation_ratio"],
            "two-sample accuracy <= 0.75": scores["c2st_accuracy"] <= GOALS["c2st_accuracy"],
            ">= 100 crops/s": scores["crops_per_second"] >= GOALS["crops_per_second"]}
