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
    fig = class_samples(model, None, tmp_path / "c.png", n=3)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == [c.replace("_", " ") for c in CLASSES] + ["benign"]
    assert "class_samples.png" in [p.name for p in finish_run_figures(_run(tmp_path, model), data_images=real)]
