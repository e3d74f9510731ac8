"""The figures a run ends with show the latent space whatever its size (untrained tiny models: fast)."""
import json

import keras
import numpy as np
import pytest
from PIL import Image

from vae_keras.config import get_config
from vae_keras.io.manifest import CLASSES
from vae_keras.models.cvae import build_model
from vae_keras.viz.figures import class_samples, finish_run_figures, interpolation_grid


def _model(name="seed", **overrides):
    keras.utils.set_random_seed(0)
    return build_model(get_config(name, quick=False, image_size=32, **overrides))


def _run(path, model, history=()):
    """An untrained model as a Run in ``path`` (its sampler: the prior)."""
    from vae_keras.samplers import NormalSampler
    from vae_keras.training.run import Run

    return Run(path, model.config, model, NormalSampler(model), history=list(history))


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(0)
    return rng.random((10, 32, 32, 1)).astype(np.float32)


def test_interpolation_rows_start_and_end_with_the_real_images(real):
    grid = interpolation_grid(_model(latent_dim=8), real, pairs=3, steps=4)
    assert grid.shape == (3 * 33 - 1, 6 * 33 - 1)                 # 3 rows of real, 4 decoded, real
    for row in range(3):
        top = row * 33
        np.testing.assert_allclose(grid[top:top + 32, :32], real[row, ..., 0], atol=1e-6)
        np.testing.assert_allclose(grid[top:top + 32, 5 * 33:], real[3 + row, ..., 0], atol=1e-6)


def test_a_64d_run_gets_interpolations_not_a_manifold(real, tmp_path):
    history = [{"epoch": 1, "loss": 3.0, "recon": 2.0, "kl": 1.0}]
    written = finish_run_figures(_run(tmp_path, _model(latent_dim=64), history), data_images=real)
    assert sorted(p.name for p in written) == ["interpolations.png", "loss_curves.png"]
    assert Image.open(tmp_path / "interpolations.png").size == (10 * 33 - 1, 4 * 33 - 1)


def test_a_2d_run_gets_its_manifold(real, tmp_path):
    written = finish_run_figures(_run(tmp_path, _model(latent_dim=2)), data_images=real)
    assert [p.name for p in written] == ["latent_manifold.png"]


def test_a_conditional_run_gets_one_row_per_class(real, tmp_path):
    model = _model("conditional", latent_dim=8)
    rows = class_samples(model, None, tmp_path / "c.png", n=3)
    assert rows.kind == "label prior" and rows.found is None
    labels = [ax.get_ylabel() for ax in rows.figure.axes]
    assert labels == [c.replace("_", " ") for c in CLASSES] + ["benign"]
    assert "class_samples.png" in [p.name for p in finish_run_figures(_run(tmp_path, model), data_images=real)]


# -- composite class rows: threats multiplied into generated bags ----------------------------------
#: Each class's stand-in threat: a plate of this transmission (uniform, so any resize keeps it).
_PLATE = {c: 0.3 - 0.05 * k for k, c in enumerate(CLASSES)}


def _threats():
    """Two crops of each class: plates of its own transmission, of two sizes."""
    from vae_keras.sampling.tip import ThreatCrop

    return [ThreatCrop(c, np.full((3 + k + j, 4 + 2 * k), _PLATE[c], np.float32), f"test:{c}:{j}")
            for k, c in enumerate(CLASSES) for j in range(2)]


class _DiffersFromBags:
    """A stand-in classifier that finds every class in an image unlike all of ``bags`` and none otherwise."""

    classes = tuple(CLASSES)

    def __init__(self, bags):
        self.bags = np.asarray(bags)[..., 0]

    def predict(self, images):
        x = np.asarray(images)[..., 0]
        new = np.array([not any(np.array_equal(a, b) for b in self.bags) for a in x], np.float32)
        return np.repeat(new[:, None], len(self.classes), axis=1)


def test_composite_rows_hold_their_class_in_exact_boxes(tmp_path):
    from vae_keras.sampling.generate import sample_images

    model, n = _model(latent_dim=8), 4
    rows = class_samples(model, None, tmp_path / "c.png", n=n, seed=3, threats=_threats())
    assert rows.kind == "composite" and list(rows.images) == [*CLASSES, "benign"]
    bags = rows.images["benign"]
    # the benign row: the generated bags, unchanged, with no box
    np.testing.assert_array_equal(bags, sample_images(model, n, seed=3, labels=[[]] * n))
    assert rows.boxes["benign"] == [[]] * n
    size = bags.shape[1]
    for c in CLASSES:
        assert rows.images[c].shape == bags.shape
        for img, bag, boxes in zip(rows.images[c][..., 0], bags[..., 0], rows.boxes[c]):
            assert [b["label"] for b in boxes] == [c]                # its class, by construction
            x1, y1, x2, y2 = boxes[0]["box"]
            assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size     # inside the image
            changed = img != bag
            ys, xs = np.nonzero(changed)                             # the pixels the threat changed
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [x1, y1, x2, y2]
            # Beer-Lambert with this row's threat: the bag times its class's transmission
            np.testing.assert_allclose(img[changed], bag[changed] * _PLATE[c], rtol=1e-5)
    assert Image.open(tmp_path / "c.png").size[0] > 0


def test_composite_rows_scored_by_a_classifier(tmp_path):
    model = _model(latent_dim=8)
    bags = class_samples(model, None, n=3, seed=1, threats=_threats()).images["benign"]
    rows = class_samples(model, None, n=3, seed=1, threats=_threats(), classifier=_DiffersFromBags(bags))
    assert rows.found == {**{c: 1.0 for c in CLASSES}, "benign": 1.0}
    labels = [ax.get_ylabel() for ax in rows.figure.axes]
    assert labels[0] == "handgun\n100% found" and labels[-1] == "benign\n100% no threat"


def test_composite_rows_need_a_threat_of_every_class():
    threats = [t for t in _threats() if t.label != "shuriken"]
    with pytest.raises(ValueError, match="shuriken"):
        class_samples(_model(latent_dim=8), None, n=2, threats=threats)


def test_finish_run_cuts_the_training_threats_into_composite_rows(tmp_path):
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.viz.finish import finish_run, training_threats

    data = tmp_path / "data"
    write_phantom_dataset(data, n=24, size=64, seed=0, progress=False, workers=1)
    crops, source = training_threats(data, 64)
    assert {c.label for c in crops} == set(CLASSES) and "phantoms" in source
    model = build_model(get_config("seed", quick=False, image_size=64, latent_dim=8))
    done = finish_run(_run(tmp_path / "run", model), data)
    assert done.class_rows.kind == "composite" and (tmp_path / "run" / "class_samples.png") in done.figures
    assert all([b["label"] for b in bs] == [c] for c in CLASSES for bs in done.class_rows.boxes[c])
