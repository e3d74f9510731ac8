"""The training loop runs unchanged under MirroredStrategy (two logical CPU devices here).

Logical devices must be configured before TensorFlow initialises, so the comparison runs in a
fresh subprocess.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from vae_keras.training.distribute import PRECISIONS, STRATEGIES

SCRIPT = textwrap.dedent("""
    import json, sys
    from vae_keras.training.distribute import select_strategy, split_cpu
    split_cpu(2)
    import tensorflow as tf
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train
    data, out = sys.argv[1], sys.argv[2]
    cfg = get_config("seed", quick=False, image_size=32, latent_dim=2, batch_size=8, epochs=1, seed=1,
                     learning_rate=1e-3)
    result = {}
    for name in ("default", "mirrored"):
        strategy = select_strategy(name)
        t = train(cfg, data, f"{out}/{name}", progress=False, strategy=strategy)
        result[name] = {"replicas": strategy.num_replicas_in_sync, "loss": t.history[-1]["loss"],
                        "test_loss": t.history[-1]["test_loss"]}
    print(json.dumps(result))
""")


def _run_both(script, tiny_dataset, tmp_path) -> dict:
    """Run ``script`` (default and mirrored training) in a fresh interpreter; its JSON result."""
    out = subprocess.run([sys.executable, "-c", script, str(tiny_dataset), str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_epoch_under_mirrored_matches_default(tiny_dataset, tmp_path):
    result = _run_both(SCRIPT, tiny_dataset, tmp_path)
    assert result["default"]["replicas"] == 1 and result["mirrored"]["replicas"] == 2
    assert result["mirrored"]["loss"] == pytest.approx(result["default"]["loss"], rel=1e-4)
    assert result["mirrored"]["test_loss"] == pytest.approx(result["default"]["test_loss"], rel=1e-4)


def test_unknown_strategy_and_precision_are_refused():
    from vae_keras.training.distribute import select_strategy, set_precision

    with pytest.raises(ValueError, match="strategy must be one of"):
        select_strategy("gpu-farm")
    with pytest.raises(ValueError, match="precision must be one of"):
        set_precision("float8")
    assert "mirrored" in STRATEGIES and "mixed_bfloat16" in PRECISIONS


def test_tpu_without_a_tpu_is_a_clear_error():
    from vae_keras.training.distribute import select_strategy

    with pytest.raises(ValueError, match="no TPU"):
        select_strategy("tpu")


MIXED = textwrap.dedent("""
    import json, sys
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train
    cfg = get_config(sys.argv[3], quick=False, image_size=32, latent_dim=4, batch_size=8, epochs=1, seed=1)
    t = train(cfg, sys.argv[1], sys.argv[2], progress=False, precision="mixed_bfloat16")
    print(json.dumps({"loss": t.history[-1]["loss"], "policy": t.precision,
                      "out": t.model.decode(t.model.encode(t.train_images[:2] / 255.0)[0]).dtype.name}))
""")


def test_mixed_precision_trains_with_float32_outputs(tiny_dataset, tmp_path):
    """A learned-variance likelihood (``sigma``) under bfloat16; the conditional one runs mirrored below."""
    out = subprocess.run([sys.executable, "-c", MIXED, str(tiny_dataset), str(tmp_path / "run"), "sigma"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["policy"] == "mixed_bfloat16" and result["out"] == "float32"
    assert result["loss"] == result["loss"] and result["loss"] < 1e6  # finite


ADVERSARIAL = textwrap.dedent("""
    import json, sys
    from vae_keras.training.distribute import select_strategy, split_cpu
    split_cpu(2)
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train
    cfg = get_config("conditional", quick=False, image_size=32, latent_dim=4, batch_size=8, epochs=1, seed=1,
                     adversarial_start_epoch=0, gmm_components=2)
    t = train(cfg, sys.argv[1], sys.argv[2], progress=False, strategy=select_strategy("mirrored"),
              precision="mixed_bfloat16")
    print(json.dumps({k: t.history[-1][k] for k in ("loss", "discriminator_loss", "adversarial_weight")}))
""")


def test_adversarial_step_runs_mirrored_in_mixed_precision(tiny_dataset, tmp_path):
    """The discriminator's extra optimizer and tape work per replica and under a bfloat16 policy."""
    out = subprocess.run([sys.executable, "-c", ADVERSARIAL, str(tiny_dataset), str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(v == v and abs(v) < 1e6 for v in result.values()), result    # finite
    assert result["adversarial_weight"] > 0


LATENT_SCRIPT = textwrap.dedent("""
    import json, sys
    from vae_keras.training.distribute import select_strategy, split_cpu
    split_cpu(2)
    import numpy as np
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train
    data, out = sys.argv[1], sys.argv[2]
    # 32 training latents (flips included) in prior batches of 7: the last batch of 4 splits 2 + 2, the others 3 + 4
    cfg = get_config("latent", quick=False, image_size=32, batch_size=8, epochs=1, prior_epochs=2,
                     prior_batch_size=7, prior_widths=(8, 16, 16), seed=1)
    result = {}
    for name in ("default", "mirrored"):
        strategy = select_strategy(name)
        t = train(cfg, data, f"{out}/{name}", progress=False, strategy=strategy)
        result[name] = {"replicas": strategy.num_replicas_in_sync, "loss": t.history[-1]["loss"],
                        "prior": [h["loss"] for h in t.prior_history]}
    print(json.dumps(result))
""")


def test_latent_prior_stage_under_mirrored_matches_default(tiny_dataset, tmp_path):
    """Both stages of a `latent` run: the same losses on two replicas as on one (uneven slices included)."""
    result = _run_both(LATENT_SCRIPT, tiny_dataset, tmp_path)
    assert result["mirrored"]["replicas"] == 2 and len(result["mirrored"]["prior"]) == 2
    assert result["mirrored"]["loss"] == pytest.approx(result["default"]["loss"], rel=1e-4)
    assert result["mirrored"]["prior"] == pytest.approx(result["default"]["prior"], rel=1e-4)
