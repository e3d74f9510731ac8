"""TFDS builder ``xray_phantoms``: the procedural phantom bags as a TensorFlow Dataset.

Importing this module registers the builder, so afterwards::

    import tensorflow_datasets as tfds
    import data_prep.tfds_phantoms  # noqa: F401  (registers "xray_phantoms")

    ds = tfds.load("xray_phantoms/tiny", split="train", data_dir="/tmp/tfds")
    for ex in ds.take(1):
        ex["image"]      # (64, 64, 1) uint8, bright background
        ex["multi_hot"]  # (4,) float32 in CLASSES order
        ex["objects"]    # {"bbox": (n, 4) float32 [ymin, xmin, ymax, xmax] in [0, 1], "label": (n,) int64}

Every example is rendered by :func:`data_prep.phantoms.render_phantom` (``seed``, ``index``), and
the train/test split is :func:`data_prep.phantoms.split_of`, so ``xray_phantoms/64`` holds exactly
the images of ``python -m vae_keras phantoms OUT --n 1000 --size 64`` (same seed), split alike.
Nothing is downloaded: there is no source file, only code. (TFDS' GCS look-ups are disabled in
tensorflow-datasets >= 4.9; pass ``try_gcs=False``, the default, to ``tfds.load``.)

Configs (name: size, images): ``tiny`` 64 px, 40 (tests, seconds); ``64`` 64 px, 1,000 (the
default, ~10 s); ``224`` 224 px, 5,000 (the seed's resolution, about a minute). Make your own with
``XrayPhantomsConfig(name="96", size=96, num_images=3000)`` (add ``preset="belt"`` for bags on a
conveyor) passed as ``config=`` to ``tfds.builder``.
"""
from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
from data_prep.phantoms import split_of
from data_prep.phantoms import render_phantom


def _importlib_resources_shim():
    """tensorflow-datasets 4.9.x imports ``importlib_resources`` (only for ``abc.Traversable``)
    without declaring it (tensorflow/datasets#11212): without the package every builder defined
    outside TFDS fails. Provide the standard library's equivalent when the package is missing."""
    try:
        import importlib_resources  # noqa: F401
    except ImportError:
        try:
            from importlib.resources.abc import Traversable  # Python >= 3.11
        except ImportError:
            from importlib.abc import Traversable  # Python 3.10
        shim = types.ModuleType("importlib_resources")
        shim.abc = types.SimpleNamespace(Traversable=Traversable)
        sys.modules.setdefault("importlib_resources", shim)


_importlib_resources_shim()
import tensorflow_datasets as tfds  # noqa: E402

from vae_keras.io.manifest import CLASSES, labels_to_multi_hot


@dataclasses.dataclass
class XrayPhantomsConfig(tfds.core.BuilderConfig):
    """Size and number of the phantom images.

    Attributes:
        size: image side in pixels.
        num_images: images in train + test.
        seed: data set seed (image ``i`` depends only on ``(seed, i)``).
        benign_fraction: share of bags without a threat.
        test_fraction: share of images in ``test`` (exact; see ``phantoms.split_of``).
        preset: framing preset (``"gdxray"``: the bag fills the scan; ``"belt"``: on a conveyor).
    """

    size: int = 64
    num_images: int = 1000
    seed: int = 0
    benign_fraction: float = 0.3
    test_fraction: float = 0.3
    preset: str = "gdxray"


def to_bboxes(boxes, size: int) -> np.ndarray:
    """``[{"box": [x1, y1, x2, y2]}, ...]`` in pixels -> ``(n, 4)`` float32 TFDS BBoxes in ``[0, 1]``.

    TFDS' order is ``[ymin, xmin, ymax, xmax]``, normalised by the image side.
    """
    out = np.zeros((len(boxes), 4), np.float32)
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = b["box"]
        out[i] = (y1 / size, x1 / size, y2 / size, x2 / size)
    return np.clip(out, 0.0, 1.0)


def features_dict(size: int, extra=None):
    """The features shared by the phantom and GDXray builders."""
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(size, size, 1), dtype=np.uint8, encoding_format="png"),
        "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=list(CLASSES))),
        "multi_hot": tfds.features.Tensor(shape=(len(CLASSES),), dtype=np.float32),
        "objects": tfds.features.Sequence({
            "bbox": tfds.features.BBoxFeature(),
            "label": tfds.features.ClassLabel(names=list(CLASSES)),
        }),
        "source": tfds.features.Text(),
        **(extra or {}),
    })


def make_example(image_u8: np.ndarray, labels, boxes, source: str, **extra) -> dict:
    """One example dict from a ``(size, size)`` uint8 image and its manifest-style annotations."""
    size = image_u8.shape[0]
    return {
        "image": image_u8.reshape(size, size, 1),
        "labels": list(labels),
        "multi_hot": labels_to_multi_hot(labels),
        "objects": {"bbox": to_bboxes(boxes, size), "label": [b["label"] for b in boxes]},
        "source": source,
        **extra,
    }


class XrayPhantoms(tfds.core.GeneratorBasedBuilder):
    """Procedural X-ray baggage phantoms with threat labels and boxes (no download)."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: phantoms from data_prep.phantoms.render_phantom.",
                     "2.0.0": "Phantoms that pass for real scans (issue #13): framing presets, scanner model, "
                              "clutter library; the images changed."}
    BUILDER_CONFIGS = [
        XrayPhantomsConfig(name="tiny", description="64x64, 40 images: tests and smoke runs",
                           size=64, num_images=40),
        XrayPhantomsConfig(name="64", description="64x64, 1,000 images", size=64, num_images=1000),
        XrayPhantomsConfig(name="224", description="224x224 (the seed's size), 5,000 images",
                           size=224, num_images=5000),
    ]
    DEFAULT_CONFIG_NAME = "64"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=("Synthetic grayscale X-ray baggage images (bags, clutter, handguns, knives, "
                         "razor blades, shuriken) rendered by a Beer-Lambert phantom generator."),
            features=features_dict(self.builder_config.size),
            supervised_keys=("image", "multi_hot"),
        )

    def _split_generators(self, dl_manager):

        c = self.builder_config
        split = split_of(c.num_images, c.seed, c.test_fraction)
        return {
            name: self._generate_examples([i for i, s in enumerate(split) if s == name])
            for name in ("train", "test") if name in split
        }

    def _generate_examples(self, indices):

        c = self.builder_config
        for i in indices:
            image, labels, boxes = render_phantom(c.seed, i, c.size, c.benign_fraction, c.preset)  # (size, size)
            image_u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
            yield f"{i:07d}", make_example(image_u8, labels, boxes, source=f"phantom:{c.seed}:{i}")
