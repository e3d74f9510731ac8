"""TFDS builders: ``xray_phantoms`` (generated) and ``gdxray_baggages`` (manual dir made here).

No network: GCS look-ups stay off (``try_gcs=False``, ``try_download_gcs=False``) and the builders
never download anything.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tfds = pytest.importorskip("tensorflow_datasets")      # third-party; our own modules import plainly

import data_prep.tfds_gdxray  # noqa: E402,F401  (registers gdxray_baggages)
import data_prep.tfds_phantoms  # noqa: E402,F401  (registers xray_phantoms)
from data_prep.phantoms import render_phantom  # noqa: E402
from vae_keras.io.manifest import CLASSES  # noqa: E402

OFFLINE = tfds.download.DownloadConfig(try_download_gcs=False)


def test_phantoms_load_shapes_and_dtypes(tmp_path):
    assert "xray_phantoms" in tfds.list_builders()
    ds, info = tfds.load("xray_phantoms/tiny", data_dir=str(tmp_path), with_info=True, try_gcs=False,
                         download_and_prepare_kwargs={"download_config": OFFLINE})
    assert info.splits["train"].num_examples == 28 and info.splits["test"].num_examples == 12
    assert info.features["labels"].feature.names == list(CLASSES)
    n_boxes = 0
    for ex in ds["train"]:
        assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype.name == "uint8"
        assert ex["multi_hot"].shape == (4,) and ex["multi_hot"].dtype.name == "float32"
        # each example against the generator's own truth for its index (not against itself)
        i = int(ex["source"].numpy().decode().rsplit(":", 1)[1])
        image, labels, boxes = render_phantom(0, i, 64)
        np.testing.assert_array_equal(ex["image"].numpy()[..., 0], np.rint(image * 255).astype(np.uint8))
        want = [CLASSES.index(c) for c in labels]
        assert ex["labels"].numpy().tolist() == want
        np.testing.assert_array_equal(ex["multi_hot"].numpy(), np.isin(np.arange(4), want).astype(np.float32))
        assert ex["objects"]["label"].numpy().tolist() == [CLASSES.index(b["label"]) for b in boxes]
        # pixel [x1, y1, x2, y2] -> TFDS [ymin, xmin, ymax, xmax] / side
        np.testing.assert_allclose(ex["objects"]["bbox"].numpy().reshape(-1, 4),
                                   [[b["box"][1] / 64, b["box"][0] / 64, b["box"][3] / 64, b["box"][2] / 64]
                                    for b in boxes] or np.zeros((0, 4)), atol=1e-6)
        n_boxes += len(boxes)
    assert n_boxes > 0


def test_gdxray_builder_reads_manual_dir_and_splits_by_series(tmp_path):
    manual = tmp_path / "manual"
    for s in range(40, 46):
        for k in range(1, 4):
            a = np.full((30, 50), 240, np.uint8)
            a[5:15, 10:20] = 20
            p = manual / "Baggages" / f"B{s:04d}" / f"B{s:04d}_{k:04d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)
    (manual / "Baggages" / "B0040" / "B0040_0001.xml").write_text(
        "<annotation><object><name>Shuriken</name><bndbox><xmin>11</xmin><ymin>6</ymin>"
        "<xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>")
    builder = tfds.builder("gdxray_baggages/64", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual), try_download_gcs=False))
    ds = builder.as_dataset()
    sides = {}
    for split in ("train", "test"):
        for ex in ds[split]:
            assert ex["image"].shape == (64, 64, 1)
            sides.setdefault(ex["series"].numpy().decode(), set()).add(split)
            if ex["source"].numpy().decode() == "B0040/B0040_0001.png":
                assert ex["labels"].numpy().tolist() == [CLASSES.index("shuriken")]
                # 50x30 -> 64x38 (x 1.28, y 38/30), y offset 13: [10, 5, 20, 15] -> [12.8, 19.3, 25.6, 32] -> [12, 19, 26, 32]
                np.testing.assert_allclose(ex["objects"]["bbox"].numpy(),
                                           [[19 / 64, 12 / 64, 32 / 64, 26 / 64]], atol=1e-6)
    assert len(sides) == 6 and all(len(v) == 1 for v in sides.values())
    assert builder.info.splits["train"].num_examples == 12 and builder.info.splits["test"].num_examples == 6
