"""Labels that are true: a rare label combination says so, unknown classes are refused.

vae_keras.samplers (GMMSampler's per-combination mixtures and their fallback),
vae_keras.sampling.generate (the manifest's ``fallback`` column, --label checks).
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from vae_keras.errors import DataError
from vae_keras.io.manifest import CLASSES, read_manifest
from vae_keras.samplers import FALLBACK_NOTE, GMMSampler, RareLabelsWarning
from vae_keras.sampling.generate import export_samples, per_sample_labels, sample_images


def _multi_hot(names):
    return np.array([[float(c in ns) for c in CLASSES] for ns in names], np.float32)


@pytest.fixture
def fitted(tiny_model):
    """A mixture fitted on 40 images: 20 benign, 18 knife (each a mixture of its own), 2 handgun (too rare)."""
    rng = np.random.default_rng(0)
    images = rng.random((40, 32, 32, 1)).astype(np.float32)
    names = [[]] * 20 + [["knife"]] * 18 + [["handgun"]] * 2
    sampler = GMMSampler(tiny_model, n_components=2, min_points=10, points_per_component=10)
    return sampler.fit_images(images, labels=_multi_hot(names))


def test_a_rare_combination_warns_once_and_is_flagged(fitted):
    y = _multi_hot([["handgun"]] * 3 + [["knife"]] * 3)
    with pytest.warns(RareLabelsWarning, match="handgun") as caught:
        fitted.sample(6, labels=y)
        fitted.sample(6, labels=y, seed=1)                       # the same combination: no second warning
    assert len([w for w in caught if issubclass(w.category, RareLabelsWarning)]) == 1
    assert fitted.fallbacks(y).tolist() == [True] * 3 + [False] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RareLabelsWarning)        # a combination with its own mixture: silent
        fitted.sample(4, labels=_multi_hot([["knife"]] * 4))


def test_the_manifest_records_which_images_fell_back(tiny_model, fitted, tmp_path):
    labels = [["handgun"], ["knife"], [], ["handgun"]]
    with pytest.warns(RareLabelsWarning):
        rows = export_samples(tiny_model, 4, tmp_path / "out", labels=labels, sampler=fitted, progress=False)
    back = read_manifest(tmp_path / "out" / "manifest.csv")
    assert [r.fallback for r in back] == [FALLBACK_NOTE, "", "", FALLBACK_NOTE] == [r.fallback for r in rows]
    header = (tmp_path / "out" / "manifest.csv").read_text().splitlines()[0]
    assert header.endswith(",fallback")                         # always there in an export, empty or not


def test_unknown_label_is_a_data_error(tiny_model):
    with pytest.raises(DataError, match="unknown label.*gun.*known classes: handgun, knife"):
        per_sample_labels(["gun"], 3)
    with pytest.raises(DataError, match="unknown label"):
        sample_images(tiny_model, 2, labels=[["knife"], ["bomb"]])


def test_a_conditional_run_with_another_class_list_is_a_data_error():
    """A run trained with 3 classes cannot be given this project's 4-class label vectors."""
    model = types.SimpleNamespace(conditional=True, layout=False, num_classes=3, latent_dim=2,
                                  config=types.SimpleNamespace(image_size=32, name="other"))
    with pytest.raises(DataError, match="trained with 3 classes.*have 4"):
        sample_images(model, 2, labels=["knife"])


def test_a_data_set_with_another_class_list_is_a_data_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,split,labels\ntrain/a.png,train,knife;scissors\n")
    with pytest.raises(DataError, match="scissors"):
        read_manifest(tmp_path / "manifest.csv")
