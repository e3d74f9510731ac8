"""TFDS builder ``gdxray_baggages``: the GDXray baggage group, read from a manual download.

GDXray may not be redistributed, so TFDS cannot download it: you fetch it once and point TFDS
at it (see ``MANUAL_DOWNLOAD_INSTRUCTIONS``). Reading reuses :mod:`data_prep.prepare` exactly:
any image mode to 8-bit grayscale, letterboxed to ``size`` with white padding, boxes from VOC XML /
YOLO txt / ``ground_truth.txt``, and the train/test split by series (one bag never lands on both
sides), the same split ``python -m vae_keras prepare Baggages OUT`` makes. Unreadable files are
skipped with a warning in the log.

Example::

    import tensorflow_datasets as tfds
    import data_prep.tfds_gdxray  # noqa: F401  (registers "gdxray_baggages")

    ds = tfds.load("gdxray_baggages/224", split="train", data_dir="~/tensorflow_datasets",
                   download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                       manual_dir="~/Downloads/gdxray")})

Configs: ``224`` (default, the seed's size), ``128``, ``64``. For ``ground_truth.txt`` classes use
your own config, e.g. ``GdxrayBaggagesConfig(name="224-gt", size=224, gt_class="B0046=handgun")``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from absl import logging

from data_prep.prepare import BadImageError, SERIES_RE, render_image, scan_source
from data_prep.tfds_phantoms import features_dict, make_example, tfds

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
GDXray is free for research and education but may not be redistributed, so download it yourself:
1. Open the GDXray page (https://domingomery.ing.puc.cl/material/gdxray/, "Download" section) and
   download the Baggages group: Baggages.zip (about 3 GB).
2. Put Baggages.zip into the manual folder (default ~/tensorflow_datasets/downloads/manual/), or
   extract it there so that the folder holds Baggages/B0001/B0001_0001.png ... (a folder of B0xxx
   series directly in the manual folder works as well).
3. Optional annotations next to the images are used: Pascal VOC XML (B0046_0001.xml), YOLO txt
   with a classes.txt, and each series' ground_truth.txt (needs a class: see gt_class).
"""


@dataclasses.dataclass
class GdxrayBaggagesConfig(tfds.core.BuilderConfig):
    """How the scans are imported (see :func:`data_prep.prepare.prepare` for each field)."""

    size: int = 224
    test_fraction: float = 0.3
    seed: int = 0
    window: Optional[tuple] = None
    gt_class: Optional[str] = None


def _find_baggages(manual_dir: Path) -> Optional[Path]:
    """The folder holding the ``Bxxxx`` series under ``manual_dir`` (``Baggages`` or itself)."""
    for cand in (manual_dir / "Baggages", manual_dir / "baggages", manual_dir):
        if cand.is_dir() and any(p.is_dir() and SERIES_RE.match(p.name) for p in cand.iterdir()):
            return cand
    for cand in sorted(manual_dir.glob("*/Baggages")) + sorted(manual_dir.glob("*/*/Baggages")):
        if cand.is_dir():
            return cand
    return None


class GdxrayBaggages(tfds.core.GeneratorBasedBuilder):
    """GDXray baggage X-ray scans (Mery et al., 2015), grayscale, letterboxed, split by series."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release, via data_prep.prepare."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        GdxrayBaggagesConfig(name="224", description="224x224 letterboxed (the seed's size)", size=224),
        GdxrayBaggagesConfig(name="128", description="128x128 letterboxed", size=128),
        GdxrayBaggagesConfig(name="64", description="64x64 letterboxed", size=64),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=("GDXray baggage group: X-ray images of bags and objects (handguns, knives, "
                         "razor blades, shuriken) in many views per series; 8-bit grayscale, letterboxed "
                         "with white padding; split by series."),
            features=features_dict(self.builder_config.size, {"series": tfds.features.Text()}),
            supervised_keys=("image", "multi_hot"),
            homepage="https://domingomery.ing.puc.cl/material/gdxray/",
            citation=("@article{Mery2015GDXray, title={GDXray: The database of X-ray images for "
                      "nondestructive testing}, author={Mery, Domingo and Riffo, Vladimir and Zscherpel, "
                      "Uwe and Mondragon, German and Lillo, Ivan and Zuccar, Irene and Lobel, Hans and "
                      "Carrasco, Miguel}, journal={Journal of Nondestructive Evaluation}, volume={34}, "
                      "number={4}, pages={42}, year={2015}}"),
        )

    def _split_generators(self, dl_manager):
        manual = Path(dl_manager.manual_dir)
        root = _find_baggages(manual)
        if root is None:
            zips = sorted(manual.glob("*.zip")) + sorted(manual.glob("*.ZIP"))
            if zips:  # e.g. Baggages.zip, extracted by TFDS into its extracted/ folder
                root = _find_baggages(Path(dl_manager.extract(zips[0])))
        if root is None:
            raise AssertionError(f"no GDXray series folders (B0001, B0002, ...) found in {manual}.\n"
                                 f"{MANUAL_DOWNLOAD_INSTRUCTIONS}")
        c = self.builder_config
        plan = scan_source(root, test_fraction=c.test_fraction, seed=c.seed, gt_class=c.gt_class)
        for s in plan.skipped:
            logging.warning("gdxray_baggages: skipped %s: %s", s["path"], s["reason"])
        for w in plan.notes.warnings:
            logging.warning("gdxray_baggages: %s", w)
        return {
            name: self._generate_examples([im for im in plan.images if im.split == name])
            for name in ("train", "test") if any(im.split == name for im in plan.images)
        }

    def _generate_examples(self, items):
        c = self.builder_config
        for item in items:
            try:
                image, boxes = render_image(item, c.size, c.window)  # (size, size) uint8
            except BadImageError as e:
                logging.warning("gdxray_baggages: skipped %s: %s", item.rel, e.reason)
                continue
            yield item.rel, make_example(image, item.labels, boxes, source=item.rel, series=item.series)
