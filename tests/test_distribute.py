"""The training loop runs unchanged under MirroredStrategy (two logical CPU devices here).

Logical devices must be configured before TensorFlow initialises, so the trainings run in a
fresh subprocess: one for the module (a module-scoped fixture), since each start-up costs seconds.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from vae_keras.training.distribute import PRECISIONS, STRATEGIES

#: Every training of this module in one fresh interpreter (one TensorFlow start-up, not four): two
#: logical CPU devices, then float32 runs (default and mirrored), then the bfloat16 one (the global
#: dtype policy it sets stays set). Prints one JSON object, a key per part.
SCRIPT = textwrap.dedent("""
    import json, sys
    from vae_keras.training.distribute import select_strategy, split_cpu
    split_cpu(2)
    import tensorflow as tf
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train
    data, out = sys.argv[1], sys.argv[2]
    result = {}
    # one strategy of each kind for every part (a second MirroredStrategy in a process reuses collective keys)
    strategies = {name: select_strategy(name) for name in ("default", "mirrored")}

    def both(part, cfg, extra):
        result[part] = {}
        for name, strategy in strategies.items():
            t = train(cfg, data, f"{out}/{part}_{name}", progress=False, strategy=strategy)
            result[part][name] = {"replicas": strategy.num_replicas_in_sync, **extra(t)}

    # the seed CVAE, one epoch
    both("seed", get_config("seed", quick=False, image_size=32, latent_dim=2, batch_size=8, epochs=1, seed=1,
                            learning_rate=1e-3),
         lambda t: {"loss": t.history[-1]["loss"], "test_loss": t.history[-1]["test_loss"]})
    # both stages of `latent`: 32 training latents (flips included) in prior batches of 7: the last batch
    # of 4 splits 2 + 2, the others 3 + 4
    both("latent", get_config("latent", quick=False, image_size=32, batch_size=8, epochs=1, prior_epochs=2,
                              prior_batch_size=7, prior_widths=(8, 16, 16), seed=1),
         lambda t: {"loss": t.history[-1]["loss"], "prior": [h["loss"] for h in t.prior_history]})
    # the adversarial step (discriminator on from the start) of a learned-variance likelihood (`conditional`
    # is `sigma` with a discriminator and labels), mirrored and under bfloat16
    cfg = get_config("conditional", quick=False, image_size=32, latent_dim=4, batch_size=8, epochs=1, seed=1,
                     adversarial_start_epoch=0, gmm_components=2)
    t = train(cfg, data, f"{out}/adversarial", progress=False, strategy=strategies["mirrored"],
              precision="mixed_bfloat16")
    result["adversarial"] = {k: t.history[-1][k] for k in ("loss", "discriminator_loss", "adversarial_weight")}
    labels = tf.constant(t.train_labels[:2], tf.float32)
    result["mixed"] = {"loss": t.history[-1]["loss"], "policy": t.precision,
                       "out": t.model.decode(t.model.encode(t.train_images[:2] / 255.0, y=labels)[0], y=labels).dtype.name}
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> dict:
    """:data:`SCRIPT`'s JSON result, run once for the module in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_dataset), str(tmp_path_factory.mktemp("distribute"))],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_epoch_under_mirrored_matches_default(trained):
    result = trained["seed"]
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


def test_mixed_precision_trains_with_float32_outputs(trained):
    """A learned-variance likelihood under bfloat16 (the mirrored ``conditional`` run of the next test): float32 out."""
    result = trained["mixed"]
    assert result["policy"] == "mixed_bfloat16" and result["out"] == "float32"
    assert result["loss"] == result["loss"] and result["loss"] < 1e6  # finite


def test_adversarial_step_runs_mirrored_in_mixed_precision(trained):
    """The discriminator's extra optimizer and tape work per replica and under a bfloat16 policy."""
    result = trained["adversarial"]
    assert all(v == v and abs(v) < 1e6 for v in result.values()), result    # finite
    assert result["adversarial_weight"] > 0


def test_latent_prior_stage_under_mirrored_matches_default(trained):
    """Both stages of a `latent` run: the same losses on two replicas as on one (uneven slices included)."""
    result = trained["latent"]
    assert result["mirrored"]["replicas"] == 2 and len(result["mirrored"]["prior"]) == 2
    assert result["mirrored"]["loss"] == pytest.approx(result["default"]["loss"], rel=1e-4)
    assert result["mirrored"]["prior"] == pytest.approx(result["default"]["prior"], rel=1e-4)
