"""``evaluate_run`` end to end on tiny runs, and its parts on cases whose answer is known.

Two runs are trained once for the module (32x32, 16 training images, one epoch of two steps): a
``seed`` run with a ``gmm`` sampler (so that both samplers can be asked for) and a ``layout`` run.
Each works on its own copy of the tiny data set, because the evaluation caches its threat
classifier in ``DATA/.cache``.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from vae_keras.config import get_config
from vae_keras.evaluation import evaluate as E
from vae_keras.evaluation import metrics as M
from vae_keras.io.manifest import CLASSES

pytestmark = pytest.mark.filterwarnings("ignore:label combination")   # 16 images: every combination is rare

SMALL = dict(n=8, k=4, n_likelihood=4, n_per_class=4, folds=2, two_sample_steps=20, progress=False)


def _train(name, data, run, **overrides):
    from vae_keras.training.trainer import Trainer

    config = get_config(name, quick=False, image_size=32, batch_size=8, epochs=1, gmm_components=2, **overrides)
    Trainer(config, str(data), run, progress=False).fit()
    return run


@pytest.fixture(scope="module")
def seed_run(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_seed")
    data = shutil.copytree(tiny_dataset, root / "data")
    return data, _train("seed", data, root / "run", latent_dim=2, sampler="gmm")


@pytest.fixture(scope="module")
def layout_run(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_layout")
    data = shutil.copytree(tiny_dataset, root / "data")
    return data, _train("layout", data, root / "run")


class HandgunEverywhere:
    """A stand-in threat classifier: finds a handgun (and nothing else) in every image; its
    features are each image's mean and standard deviation."""

    classes = tuple(CLASSES)
    info = {"stub": True}

    def predict(self, images):
        probs = np.zeros((len(M.as_images(images)), len(CLASSES)), np.float32)
        probs[:, CLASSES.index("handgun")] = 0.9
        return probs

    def features(self, images):
        x = M.as_images(images).reshape(len(images), -1)
        return np.stack([x.mean(1), x.std(1)], axis=1)


@pytest.fixture
def stubbed(monkeypatch):
    """The stub classifier, and a two-sample test that is not trained (it has its own tests)."""
    monkeypatch.setattr(E, "threat_classifier", lambda data_dir, size, progress=True: HandgunEverywhere())
    monkeypatch.setattr(M, "classifier_two_sample_test", lambda real, gen, folds=5, steps=300, seed=0: 0.5)


# -- known answers -------------------------------------------------------------------------------
def test_iwae_bound_is_tighter_than_the_elbo_per_image_and_equal_at_k1(tiny_model):
    x = tf.random.stateless_uniform((5, 32, 32, 1), seed=(1, 2)).numpy()
    elbo, iwae = E.importance_weighted_nll(tiny_model, x, k=16, batch_size=2, seed=0)
    assert elbo.shape == iwae.shape == (5,) and np.all(np.isfinite(elbo))
    assert np.all(iwae <= elbo + 1e-4)                    # log-mean-exp >= mean-log (Jensen), image by image
    assert np.all(iwae < elbo - 1e-3)                     # and strictly, as 16 draws differ
    e1, i1 = E.importance_weighted_nll(tiny_model, x, k=1, seed=0)
    np.testing.assert_allclose(i1, e1, rtol=1e-6)


def test_class_recognition_counts_the_images_the_classifier_finds_the_class_in():
    class DarkMeansKnife:                                  # finds a knife in images darker than 0.5
        classes = tuple(CLASSES)

        def predict(self, images):
            probs = np.zeros((len(images), len(CLASSES)))
            probs[:, CLASSES.index("knife")] = M.as_images(images).mean(axis=(1, 2)) < 0.5
            return probs

    dark, bright = np.full((3, 8, 8), 0.2), np.full((1, 8, 8), 0.9)
    rec = M.class_recognition(DarkMeansKnife(), {"knife": np.concatenate([dark, bright]), "handgun": dark})
    assert rec == {"knife": 0.75, "handgun": 0.0}


# -- end to end ----------------------------------------------------------------------------------
def test_evaluate_run_end_to_end(seed_run):
    data, run = seed_run
    out = E.evaluate_run(run, data, **SMALL)
    saved = json.loads((run / E.METRICS_FILE).read_text())
    assert saved == json.loads(json.dumps(out))
    assert out["sampler"] == "gmm" and out["epochs"] == 1 and out["n_likelihood"] == 4 and out["iwae_k"] == 4
    assert np.isfinite(out["nll_iwae_bpd"]) and out["nll_iwae_bpd"] <= out["nll_elbo_bpd"] + 1e-6
    for key in ("recon_psnr", "sharpness_ratio", "intensity_w1", "memorisation_ratio", "frechet_distance"):
        assert np.isfinite(out[key]), key
    assert out["c2st_accuracy"] in {i / 16 for i in range(17)}       # 8 real + 8 generated, all scored
    # the real threat classifier, trained on the 16 training images and cached beside the data
    assert out["threat_classifier"]["train_images"] == 16
    assert (data / ".cache" / "threat_classifier_32.json").is_file()
    # 16 training images: no label combination has enough for a mixture of its own, so an
    # unconditional run cannot be asked for a class and is not scored on it
    assert "class_recognition" not in out and "class_recognition_mean" not in out


def test_class_recognition_through_evaluate_with_a_stub_classifier(layout_run, stubbed):
    data, run = layout_run                                # conditional: can be asked for each class
    out = E.evaluate_run(run, data, save=False, **SMALL)
    assert out["class_recognition"] == {"handgun": 1.0, "knife": 0.0, "razor_blade": 0.0, "shuriken": 0.0}
    assert out["class_recognition_mean"] == 0.25
    assert out["benign_no_threat_found"] == 0.0          # the stub finds a handgun in every benign bag too
    assert out["threat_classifier"] == {"stub": True}


def test_sampler_override_draws_from_the_requested_sampler(seed_run, stubbed):
    from vae_keras.samplers import GMMSampler, NormalSampler, load_sampler
    from vae_keras.sampling.generate import sample_images
    from vae_keras.training.checkpoint import load_run

    from vae_keras.training.run import open_run

    data, run = seed_run
    _, model = load_run(run)
    real = M.as_images(E.load_split(data, "test", image_size=32)[0][:8])
    opened = open_run(run)
    assert type(opened.sampler) is GMMSampler
    other = opened.with_sampler("normal")
    assert type(other.sampler) is NormalSampler and other.model is opened.model     # the model shared, not reloaded
    for kind in ("gmm", "normal"):   # the run's own, then the override
        out = E.evaluate_run(opened, data, sampler=None if kind == "gmm" else kind, save=False, **SMALL)
        assert out["sampler"] == kind
        # the sample measures are those of that sampler's images
        gen = M.quantize(sample_images(model, 8, seed=0, sampler=load_sampler(run, model, kind)))
        assert out["sharpness_ratio"] == pytest.approx(M.sharpness_ratio(gen, real), rel=1e-5), kind
        assert out["intensity_w1"] == pytest.approx(M.intensity_w1(gen, real), rel=1e-5, abs=1e-7), kind


def test_cli_evaluate_passes_the_sampler_on(seed_run, monkeypatch, capsys):
    from vae_keras.cli import main

    data, run = seed_run
    seen = {}

    def fake(run, data_dir, **kw):
        seen["run"] = run
        return {"sampler": run.sampler.name}

    monkeypatch.setattr(E, "evaluate_run", fake)
    assert main(["evaluate", str(run), "--data", str(data), "--sampler", "normal", "--quiet"]) == 0
    assert seen["run"].sampler.name == "normal"                   # the run was opened with the asked-for sampler
    assert main(["evaluate", str(run), "--data", str(data), "--quiet"]) == 0
    assert seen["run"].sampler.name == "gmm"                      # and with its own without --sampler


def test_layout_run_is_scored_on_its_test_layouts(layout_run, stubbed):
    from vae_keras.data.layouts import load_layouts
    from vae_keras.training.checkpoint import load_run

    data, run = layout_run
    out = E.evaluate_run(run, data, save=False, **SMALL)
    _, model = load_run(run)
    test_x, test_y = E.load_split(data, "test", image_size=32)
    maps = load_layouts(data, "test", 32, test_y)[0][:4].astype(np.float32) / 255.0    # (4, 8, 8, 4)
    elbo, iwae = E.importance_weighted_nll(model, test_x[:4], maps, k=4, seed=0)
    assert out["nll_elbo_bpd"] == pytest.approx(E.nats_to_bpd(float(elbo.mean()), 32), rel=1e-5)
    assert out["nll_iwae_bpd"] == pytest.approx(E.nats_to_bpd(float(iwae.mean()), 32), rel=1e-5)
