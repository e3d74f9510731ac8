"""Choosing where training runs: ``tf.distribute`` strategies and numeric precision.

The training loop is written once against ``tf.distribute.Strategy`` (per-replica losses summed
over examples and divided by the *global* batch size), so the same code runs on one CPU, several
GPUs (``MirroredStrategy``), several machines (``MultiWorkerMirroredStrategy``, configured by the
``TF_CONFIG`` environment variable) and a Colab TPU (``TPUStrategy``). No home-made engine.
"""
from __future__ import annotations

import glob
import os
import sys

import tensorflow as tf
import keras

from vae_keras.errors import ConfigError

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def tpu_hinted() -> bool:
    """True where a TPU is plausible: Colab's TPU variables or a TPU VM's devices.

    Probing with ``TPUClusterResolver`` on a machine without one can take seconds of network
    look-ups, so ``auto`` only probes where the environment points at a TPU.
    """
    return bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")
                or os.environ.get("TPU_ACCELERATOR_TYPE") or glob.glob("/dev/accel*"))


def _tpu_strategy():
    local = glob.glob("/dev/accel*") and not (os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME"))
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local" if local else None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def select_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy called ``name``.

    Args:
        name: ``auto`` (a TPU if one is attached, else all GPUs when there are several, else the
            default), ``default`` (one device), ``mirrored`` (all local GPUs, or all logical CPU
            devices), ``multiworker`` (reads ``TF_CONFIG``), ``tpu``.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "tpu":
        try:
            return _tpu_strategy()
        except (ValueError, tf.errors.NotFoundError) as e:
            raise ConfigError(f"--strategy tpu: no TPU found ({e}); in Colab choose Runtime > Change runtime "
                              "type > TPU") from None
    if name == "auto":
        if tpu_hinted():
            try:
                return _tpu_strategy()
            except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError):
                pass
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(policy: str = "auto", strategy: tf.distribute.Strategy | None = None) -> str:
    """Set Keras' global dtype policy and return its name.

    ``auto`` picks ``mixed_bfloat16`` on a TPU, ``mixed_float16`` on a GPU and ``float32`` on a CPU
    (mixed precision is slower on CPUs). The model keeps its output layers in float32 either way.
    """
    if policy not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {policy!r}")
    if policy == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            policy = "mixed_bfloat16"
        elif tf.config.list_logical_devices("GPU"):
            policy = "mixed_float16"
        else:
            policy = "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def split_cpu(n: int = 2) -> None:
    """Split the CPU into ``n`` logical devices (for testing multi-replica code without GPUs).

    Must run before TensorFlow touches any device.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as e:
        print(f"warning: could not split the CPU into {n} devices ({e})", file=sys.stderr)
