"""Composite generation: the object data set, the object VAE's threats, composites with exact boxes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vae_keras.io.manifest import CLASSES, read_manifest
from vae_keras.config import get_config
from vae_keras.models.cvae import build_model
from vae_keras.sampling.objects import OBJECT_LEVEL, composite_samples, generated_objects, object_canvas, write_object_dataset


@pytest.fixture(scope="module")
def object_runs(tmp_path_factory):
    """40 phantoms at 32x32, their threats cut out (16x16 canvas), a bag run and an object run (one epoch each)."""
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.training.trainer import Trainer

    root = tmp_path_factory.mktemp("objects")
    write_phantom_dataset(root / "bags", n=40, size=32, seed=0, progress=False, workers=1)
    rows = write_object_dataset(root / "bags", root / "objects", bag_size=32, progress=False)
    small = dict(quick=False, batch_size=8, epochs=1, gmm_components=2)
    Trainer(get_config("sigma", image_size=32, **small), str(root / "bags"), root / "bag_run", progress=False).fit()
    Trainer(get_config("objects", image_size=16, **small), str(root / "objects"), root / "object_run",
            progress=False).fit()
    return root, rows


def test_object_dataset_cuts_every_boxed_threat(object_runs):
    root, rows = object_runs
    bags = read_manifest(root / "bags" / "manifest.csv")
    big = [b for r in bags for b in r.boxes if min(b["box"][2] - b["box"][0], b["box"][3] - b["box"][1]) >= 3]
    assert len(rows) == len(big) > 0                                  # one object per box of 3 px or more
    assert {r.split for r in rows} == {"train", "test"}
    assert all(len(r.labels) == 1 and r.boxes[0]["label"] == r.labels[0] for r in rows)
    assert all(r.source.startswith("crop:") for r in rows)
    img = np.asarray(Image.open(root / "objects" / rows[0].path))
    assert img.shape == (object_canvas(32),) * 2 == (16, 16)
    assert img.max() == round(OBJECT_LEVEL * 255) and img.min() < img.max()   # empty canvas at the level, a dark threat


def test_object_dataset_refuses_other_data_and_needs_boxes(object_runs, tiny_dataset, tmp_path):
    root, _ = object_runs
    with pytest.raises(FileExistsError, match="not an object set"):
        write_object_dataset(root / "bags", root / "bags", bag_size=32, progress=False)
    with pytest.raises(ValueError, match="no boxed threat"):
        write_object_dataset(tiny_dataset, tmp_path / "o", bag_size=32, progress=False)   # labels, no boxes


def test_object_dataset_alone_cut_keeps_the_same_threats(object_runs, tmp_path):
    root, rows = object_runs
    alone = write_object_dataset(root / "bags", tmp_path / "alone", bag_size=32, progress=False, cut="alone")
    assert {r.source for r in alone} <= {r.source for r in rows} and len(alone) >= 0.8 * len(rows)
    with pytest.raises(ValueError, match="unknown cut"):
        write_object_dataset(root / "bags", tmp_path / "x", bag_size=32, progress=False, cut="tight")


def test_object_dataset_rewrite_leaves_only_listed_files(object_runs, tmp_path):
    root, rows = object_runs
    out = tmp_path / "objects"
    write_object_dataset(root / "bags", out, bag_size=32, progress=False)
    (out / "train" / "knife_999999.png").write_bytes(b"stale")          # an earlier, bigger set's file
    (out / "train" / ".knife_000000.png.tmp").write_bytes(b"half")     # a killed run's temporary
    again = write_object_dataset(root / "bags", out, bag_size=32, progress=False)
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert on_disk == sorted(r.path for r in again) and [r.path for r in again] == [r.path for r in rows]
    assert not list(out.rglob(".*.tmp"))


def test_generated_objects_are_transmission_maps_of_the_class():
    model = build_model(get_config("objects", quick=False, image_size=16))
    crops = generated_objects(model, {"knife": 3, "handgun": 0, "shuriken": 1}, bag_size=64, seed=1)
    assert sorted(c.label for c in crops) == ["knife", "knife", "knife", "shuriken"]
    for c in crops:
        assert c.transmission.dtype == np.float32 and max(c.transmission.shape) <= object_canvas(64)
        assert np.all((c.transmission > 0) & (c.transmission <= 1.0))


def test_composites_have_exact_boxes_and_export_yolo(object_runs, tmp_path):
    from vae_keras.training.checkpoint import load_run
    from vae_keras.cli import main

    root, _ = object_runs
    _, bags = load_run(root / "bag_run")
    _, objects = load_run(root / "object_run")
    images, labels, boxes = composite_samples(bags, objects, [["knife"], [], ["handgun", "shuriken"]], seed=3)
    assert images.shape == (3, 32, 32, 1) and np.all((images >= 0) & (images <= 1))
    assert [sorted(b["label"] for b in bs) for bs in boxes] == [["knife"], [], ["handgun", "shuriken"]]
    np.testing.assert_array_equal(labels[2], [1, 0, 0, 1])
    plain = composite_samples(bags, objects, [[]] * 3, seed=3)[0]
    # the composite darkens its bag inside the threat's box only
    x1, y1, x2, y2 = boxes[0][0]["box"]
    outside = np.ones((32, 32), bool)
    outside[y1:y2, x1:x2] = False
    np.testing.assert_allclose(images[0, ..., 0][outside], plain[0, ..., 0][outside], atol=1e-6)
    assert np.all(images[0, y1:y2, x1:x2] <= plain[0, y1:y2, x1:x2] + 1e-6)

    out = tmp_path / "yolo"
    assert main(["generate", str(root / "bag_run"), "--objects", str(root / "object_run"), "--n", "4",
                 "--label", "knife", "--format", "yolo", "--out", str(out), "--quiet"]) == 0
    rows = read_manifest(out / "manifest.csv")
    assert all(r.labels == ["knife"] and r.boxes and r.source.startswith("composite:") for r in rows)
    assert all(f.read_text().startswith(f"{CLASSES.index('knife')} ") for f in (out / "labels").glob("*.txt"))


def test_evaluate_measures_composites(object_runs):
    import json

    from vae_keras.evaluation.evaluate import evaluate_run, objects_metrics_file

    root, _ = object_runs
    metrics = evaluate_run(root / "bag_run", root / "bags", n=12, k=2, n_likelihood=4, n_per_class=4, folds=2,
                           two_sample_steps=20, progress=False, objects_run=root / "object_run")
    assert set(metrics["class_recognition"]) == set(CLASSES)
    assert metrics["objects_run"] == str(root / "object_run") and np.isfinite(metrics["sharpness_ratio"])
    saved = json.loads((root / "bag_run" / objects_metrics_file(root / "object_run")).read_text())
    assert saved["class_recognition"] == metrics["class_recognition"]
    assert not (root / "bag_run" / "metrics.json").exists()            # the bag run's own measures untouched


def _assert_tight(box, attenuation, tol, note):
    """The box holds pixels the object darkens by more than ``tol`` and each of its edges touches one."""
    x1, y1, x2, y2 = (int(v) for v in box)
    dark = attenuation[y1:y2, x1:x2] < 1.0 - tol                      # (h, w) inside the box
    assert dark.any(), f"{note}: a box around nothing"
    assert dark[0].any() and dark[-1].any() and dark[:, 0].any() and dark[:, -1].any(), f"{note}: box not tight"


def test_an_empty_generated_object_is_redrawn_never_boxed(tiny_model, monkeypatch, capsys):
    """An object VAE sample with no dark pixel used to become a box around the whole empty patch."""
    from vae_keras.sampling import objects
    from vae_keras.sampling.generate import sample_images
    from vae_keras.sampling.tip import FOOTPRINT_TOL

    side = 16
    blank = np.full((side, side, 1), OBJECT_LEVEL, np.float32)          # an empty canvas: darkens nothing
    knife = blank.copy()
    knife[5:11, 7:9] = 0.3 * OBJECT_LEVEL
    draws = []

    def object_draws(model, n, **kwargs):                                # 1st round: one empty of two
        draws.append(n)
        return np.stack([blank, knife][:n] if len(draws) == 1 else [knife] * n)

    monkeypatch.setattr(objects, "sample_images", object_draws)
    stats = {}
    labels = [["knife"], ["knife"]]
    images, _, boxes = composite_samples(tiny_model, None, labels, seed=2, stats=stats)
    assert draws == [2, 1] and stats == {"drawn": 3, "rejected": 1}
    assert "rejected 1 of 3" in capsys.readouterr().err
    bags = sample_images(tiny_model, 2, seed=2, labels=[[], []])        # the bags hybrid_samples drew
    for i, bs in enumerate(boxes):
        assert [b["label"] for b in bs] == ["knife"]
        _assert_tight(bs[0]["box"], images[i, ..., 0] / bags[i, ..., 0], FOOTPRINT_TOL / 2, f"image {i}")


def test_object_vae_that_only_draws_empty_objects_is_an_error(tiny_model, monkeypatch):
    from vae_keras.errors import DataError
    from vae_keras.sampling import objects

    monkeypatch.setattr(objects, "sample_images",
                        lambda model, n, **kw: np.full((n, 16, 16, 1), OBJECT_LEVEL, np.float32))
    with pytest.raises(DataError, match="train it longer"):
        generated_objects(None, {"knife": 2}, bag_size=32, max_rounds=3)
