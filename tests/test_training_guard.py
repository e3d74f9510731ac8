"""The guard against collapsed training (issue #24): a classifier or detector whose training loss
never falls below that of predicting the label prior raises TrainingCollapsed instead of entering a
table with AUROC 0.50. Tiny data: 16-32 px images, a few hundred steps of width-4 networks."""
from __future__ import annotations

import numpy as np
import pytest

from vae_keras.errors import TrainingCollapsed, XrayVaeError
from vae_keras.evaluation import detection
from vae_keras.evaluation.augmentation import (COLLAPSE_MIN_STEPS, check_not_collapsed, prior_bce, tail_mean,
                                               train_classifier)
from vae_keras.io.manifest import CLASSES


def _squares(n, size=32, seed=0):
    """Bright-background images; class k present = a dark square in quadrant k (multi-label, learnable)."""
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size, 1), 0.9, np.float32)
    y = (rng.random((n, len(CLASSES))) < 0.4).astype(np.float32)
    h = size // 2
    for i in range(n):
        for k in np.flatnonzero(y[i]):
            y0, x0 = (k // 2) * h + 3, (k % 2) * h + 3
            x[i, y0:y0 + h - 6, x0:x0 + h - 6] = 0.15
    return x, y


def test_prior_bce_is_the_loss_of_constant_prevalence_predictions():
    import keras

    y = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], np.float32)
    p = np.broadcast_to(y.mean(0), y.shape)
    keras_bce = float(keras.losses.BinaryCrossentropy()(y, p))
    assert prior_bce(y) == pytest.approx(keras_bce, rel=1e-4)
    other = np.broadcast_to(np.array([0.3, 0.3, 0.3, 0.7], np.float32), y.shape)   # any other constant is worse
    assert float(keras.losses.BinaryCrossentropy()(y, other)) > prior_bce(y)
    assert tail_mean([9.0, 9.0, 9.0, 1.0, 3.0], tail=0.4) == 2.0


def test_check_not_collapsed_thresholds_and_short_runs():
    check_not_collapsed(0.50, 0.60, "net", steps=COLLAPSE_MIN_STEPS)          # learned: quiet
    with pytest.raises(TrainingCollapsed, match="did not learn") as e:
        check_not_collapsed(0.599, 0.60, "net", steps=COLLAPSE_MIN_STEPS, advice="Try X.")
    assert isinstance(e.value, XrayVaeError) and str(e.value).endswith("Try X.")
    with pytest.raises(TrainingCollapsed):
        check_not_collapsed(float("nan"), 0.60, "net", steps=COLLAPSE_MIN_STEPS)
    check_not_collapsed(0.70, 0.60, "net", steps=COLLAPSE_MIN_STEPS - 1)      # a smoke test's run: not checked


def test_classifier_guard_fires_on_constant_outputs():
    # Every image the same: the best the network can do is a constant, the label prior.
    x = np.full((24, 16, 16, 1), 0.8, np.float32)
    y = (np.random.default_rng(0).random((24, len(CLASSES))) < 0.3).astype(np.float32)
    with pytest.raises(TrainingCollapsed, match="the threat classifier did not learn"):
        train_classifier(x, y, steps=COLLAPSE_MIN_STEPS, batch_size=8, width=4)


def test_classifier_guard_fires_with_zero_learning_rate():
    x, y = _squares(24, size=16)
    with pytest.raises(TrainingCollapsed):
        train_classifier(x, y, steps=COLLAPSE_MIN_STEPS, batch_size=8, width=4, learning_rate=0.0)


def test_classifier_guard_quiet_when_it_learns():
    x, y = _squares(48)
    clf = train_classifier(x, y, steps=COLLAPSE_MIN_STEPS, batch_size=16, width=4)
    assert clf.info["prior_loss"] == pytest.approx(prior_bce(y))
    assert clf.info["train_loss"] < 0.8 * clf.info["prior_loss"]


def test_prior_focal_loss_is_the_best_constant_heatmap():
    rng = np.random.default_rng(0)
    boxes = [[{"label": CLASSES[int(rng.integers(2))], "box": [x, y, x + 8, y + 6]}]
             for x, y in rng.integers(0, 24, (10, 2))]
    ref = detection.prior_focal_loss(boxes, 32)
    maps = [detection.targets(b, 32) for b in boxes]

    def loss(p):                                   # the training step's heatmap loss for a constant p per class
        total = 0.0
        for heat, _, _, _ in maps:
            pos = heat >= 1 - 1e-6
            total += detection._focal_terms(np.broadcast_to(p, heat.shape), pos, (~pos) * (1 - heat) ** 4).sum()
        return total / sum(m[3].sum() for m in maps)

    ps = np.geomspace(1e-4, 0.5, 60)
    assert min(loss(np.array([a, b, 1e-4, 1e-4])) for a in ps for b in ps) == pytest.approx(ref, rel=0.02)
    assert loss(np.full(len(CLASSES), 0.1)) > ref                # the detector's initial bias: worse
    assert np.isnan(detection.prior_focal_loss([[]], 32))         # no box: no reference, no check


def test_detector_guard_fires_with_zero_learning_rate():
    rng = np.random.default_rng(2)
    x = np.full((16, 32, 32), 0.8, np.float32)
    boxes = []
    for img in x:
        x1, y1 = (int(v) for v in rng.integers(0, 20, 2))
        img[y1:y1 + 8, x1:x1 + 8] = 0.2
        boxes.append([{"label": "knife", "box": [x1, y1, x1 + 8, y1 + 8]}])
    with pytest.raises(TrainingCollapsed, match=r"the detector \(CenterNet\) did not learn"):
        detection.train_detector(x, boxes, steps=COLLAPSE_MIN_STEPS, width=4, learning_rate=0.0)
