"""One run, loaded once (issue #22): every ``generate`` mode builds and restores the model and the
diffusion U-Net exactly once, and the sampler options of ``generate`` and ``evaluate`` reach the
sampler (each test fails when an option is dropped on the way)."""
from __future__ import annotations

import numpy as np
import pytest

from vae_keras.cli import main
from vae_keras.config import get_config

from conftest import TINY_LATENT as TINY
OPTIONS = ["--steps", "2", "--guidance", "1.5", "--clip", "2.5"]


@pytest.fixture
def runs(run_handle_runs):
    """conftest's tiny bags, their ``latent`` run, their threats and a threat generator (read-only)."""
    return run_handle_runs


@pytest.fixture
def counted(monkeypatch):
    """Counts of model builds (a run's CVAE) and U-Net builds (its diffusion prior), and the DDIM settings
    of every denoising call."""
    from vae_keras.models import diffusion
    from vae_keras.training import checkpoint

    seen = {"model": 0, "unet": 0, "ddim": []}
    build_model, build_unet, ddim_sample = checkpoint.build_model, diffusion.build_unet, diffusion.ddim_sample

    def count_model(*a, **kw):
        seen["model"] += 1
        return build_model(*a, **kw)

    def count_unet(*a, **kw):
        seen["unet"] += 1
        return build_unet(*a, **kw)

    def record_ddim(network, noise, condition, steps, guidance, clip=0.0, maps=None, target="eps"):
        seen["ddim"].append((steps, guidance, clip))
        return ddim_sample(network, noise, condition, steps, guidance, clip, maps=maps, target=target)

    monkeypatch.setattr(checkpoint, "build_model", count_model)
    monkeypatch.setattr(diffusion, "build_unet", count_unet)
    monkeypatch.setattr(diffusion, "ddim_sample", record_ddim)
    return seen


MODES = {
    "plain": lambda r: ["generate", str(r / "run")],
    "label": lambda r: ["generate", str(r / "run"), "--label", "knife"],
    "yolo": lambda r: ["generate", str(r / "run"), "--format", "yolo", "--label", "benign"],
    "tip": lambda r: ["generate", str(r / "run"), "--tip", str(r / "bags"), "--label", "knife", "--format", "yolo"],
    "into": lambda r: ["generate", str(r / "object_run"), "--into", str(r / "bags"), "--label", "knife"],
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_generate_mode_loads_the_run_once(mode, runs, counted, tmp_path):
    argv = MODES[mode](runs) + ["--n", "3", "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    assert (counted["model"], counted["unet"]) == (1, 1), f"{mode}: built {counted['model']} models, " \
                                                         f"{counted['unet']} U-Nets"
    assert counted["ddim"], "the diffusion prior drew the latents"


@pytest.mark.parametrize("mode", ["plain", "into"])
def test_generate_options_reach_the_sampler(mode, runs, counted, tmp_path):
    assert main(MODES[mode](runs) + ["--n", "3", "--out", str(tmp_path / "a"), "--quiet"] + OPTIONS) == 0
    assert counted["ddim"] and set(counted["ddim"]) == {(2, 1.5, 2.5)}
    counted["ddim"].clear()
    assert main(MODES[mode](runs) + ["--n", "3", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    config = get_config("latent", quick=False)
    assert set(counted["ddim"]) == {(config.ddim_steps, config.guidance, config.prior_clip)}   # the run's own


def test_evaluate_options_reach_the_sampler(runs, counted, monkeypatch):
    from vae_keras.evaluation import evaluate as E

    def fake_evaluate(run, data_dir, **kw):      # samples through the run the command opened, nothing else
        run.sampler.sample(2, seed=0)
        return {"sampler": run.sampler.name}

    monkeypatch.setattr(E, "evaluate_run", fake_evaluate)
    assert main(["evaluate", str(runs / "run"), "--data", str(runs / "bags"), "--quiet"] + OPTIONS) == 0
    assert set(counted["ddim"]) == {(2, 1.5, 2.5)}
    assert counted["unet"] == 1


def test_settings_are_arguments_never_the_stored_configuration(runs, counted):
    from vae_keras.training.run import open_run

    before = (runs / "run" / "config.json").read_bytes()
    run = open_run(runs / "run", steps=4)
    assert run.sampler.steps == 4 and run.config.ddim_steps == get_config("latent", quick=False).ddim_steps
    other = run.with_sampler(steps=2, clip=0)
    assert (other.sampler.steps, other.sampler.clip, run.sampler.steps) == (2, 0.0, 4)
    assert other.model is run.model and other.sampler.network is run.sampler.network   # nothing loaded again
    z = other.sampler.sample(2, seed=3, labels=np.eye(4, dtype=np.float32)[[0, 1]])
    np.testing.assert_array_equal(z, run.sampler.sample(2, seed=3, labels=np.eye(4, dtype=np.float32)[[0, 1]],
                                                        steps=2, clip=0))         # per call = configured
    assert counted["ddim"][-2:] == [(2, run.sampler.guidance, 0.0)] * 2
    assert (counted["model"], counted["unet"]) == (1, 1)
    assert (runs / "run" / "config.json").read_bytes() == before


def test_a_sampler_refuses_options_it_does_not_have(runs):
    from vae_keras.errors import ConfigError
    from vae_keras.training.run import open_run

    with pytest.raises(ConfigError, match="normal sampler takes no steps"):
        open_run(runs / "run", sampler="normal", steps=3)
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        open_run(runs / "run", steps=0)


def test_trainer_fit_returns_the_run_it_trained(runs, tmp_path):
    from vae_keras.samplers import DiffusionSampler
    from vae_keras.training.run import Run
    from vae_keras.training.trainer import Trainer

    trainer = Trainer(get_config("latent", image_size=32, **TINY), str(runs / "bags"), tmp_path / "again",
                      progress=False)
    run = trainer.fit()
    assert isinstance(run, Run) and run is trainer.run and run.model is trainer.model
    assert isinstance(run.sampler, DiffusionSampler) and run.sampler.history == trainer.prior_history
    assert run.answers_labels and len(run.label_mix(5, seed=0)) == 5
