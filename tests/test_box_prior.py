"""Bags laid out by boxes (issue #23): the diffusion prior conditioned on a box map (``--config boxes``,
:mod:`vae_keras.samplers.box_diffusion`) draws what its map says where the map says it, and ``generate``
labels each sample with the boxes of the layout it was drawn under."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY_LATENT

SIDE = 8                                   # the stand-in's latent side (32-px images, 4 x 4 pixels per cell)


class _BoxEncoder:
    """A stand-in autoencoder whose latent map is the image averaged over 4x4 cells, times 4, minus 2, on
    every channel: a bag's threat is +2 where its box is and -2 elsewhere."""

    def __init__(self, config):
        self.config = config
        self.latent_dim = int(np.prod(config.latent_shape()))

    def encode(self, x, y=None):
        import tensorflow as tf

        cells = tf.nn.avg_pool2d(x, 4, 4, "VALID") * 4.0 - 2.0                     # (b, 8, 8, 1)
        maps = tf.tile(cells, [1, 1, 1, self.config.latent_shape()[-1]])
        return tf.reshape(maps, (tf.shape(x)[0], -1)), tf.zeros((tf.shape(x)[0], self.latent_dim))


def _bags(n: int, seed: int = 0):
    """``n`` 32-px images, each dark but for one bright 8x8 knife box at a random cell-aligned place."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 32, 32, 1), np.uint8)
    boxes, labels = [], np.zeros((n, 4), np.float32)
    for i in range(n):
        x, y = (int(v) * 4 for v in rng.integers(0, 7, size=2))
        images[i, y:y + 8, x:x + 8] = 255
        boxes.append([{"label": "knife", "box": [x, y, x + 8, y + 8]}])
        labels[i, 1] = 1.0
    return images, labels, boxes


@pytest.fixture(scope="module")
def box_prior(tmp_path_factory):
    """A box-conditioned prior fitted for 160 steps on the stand-in's latents of 256 boxed images."""
    from vae_keras.config import get_config
    from vae_keras.samplers import BoxDiffusionSampler, FitData

    config = get_config("boxes", image_size=32, **dict(TINY_LATENT, prior_epochs=20, prior_batch_size=32,
                                                       prior_learning_rate=2e-3, flip=False, label_dropout=0.1))
    assert config.latent_shape()[:2] == (SIDE, SIDE)
    images, labels, boxes = _bags(256)
    model = _BoxEncoder(config)
    return BoxDiffusionSampler.fit(model, FitData(images, labels, boxes=boxes), tmp_path_factory.mktemp("box_prior"),
                                   progress=False)


def test_a_box_map_changes_a_sample_inside_its_box_more_than_outside(box_prior):
    # no clipping: a threat cell here lies 4 standard deviations above the mean, past the default clip of 3
    here = [[{"label": "knife", "box": [0, 0, 8, 8]}]] * 16                    # top left: cells [0:2, 0:2]
    there = [[{"label": "knife", "box": [24, 24, 32, 32]}]] * 16               # bottom right: cells [6:8, 6:8]
    z_here, _ = box_prior.sample_layouts(16, seed=5, boxes=here, steps=10, guidance=2.0, clip=0.0)
    z_there, _ = box_prior.sample_layouts(16, seed=5, boxes=there, steps=10, guidance=2.0, clip=0.0)
    shape = (16, SIDE, SIDE, -1)
    here_maps, there_maps = z_here.reshape(shape), z_there.reshape(shape)
    inside = np.zeros((SIDE, SIDE), bool)
    inside[0:2, 0:2] = True
    change = np.abs(here_maps - there_maps).mean(axis=(0, 3))                  # (8, 8) mean change per cell
    far = np.ones((SIDE, SIDE), bool)
    far[0:3, 0:3] = far[5:, 5:] = False                                        # neither box nor its border
    assert change[inside].mean() > 3 * change[far].mean()
    assert here_maps[:, 0:2, 0:2].mean() > here_maps[:, 4:6, 0:2].mean() + 1.0   # the threat is where its box is


def test_layouts_are_drawn_with_the_classes_asked_for(box_prior):
    labels, boxes = box_prior.pick_layouts(6, seed=1, labels=[[0, 1, 0, 0]] * 6)
    assert all(len(b) == 1 and b[0]["label"] == "knife" for b in boxes)
    assert np.array_equal(labels, np.tile([[0, 1, 0, 0]], (6, 1)))
    _, unseen = box_prior.pick_layouts(2, seed=1, labels=[[1, 1, 0, 0]] * 2)  # no handgun box was ever seen
    assert all([b["label"] for b in bs] == ["knife"] for bs in unseen)
    _, mixed = box_prior.pick_layouts(4, seed=2)                                # the training mix
    assert all(bs and bs[0]["label"] == "knife" for bs in mixed)


def test_boxes_run_labels_its_samples_with_the_layouts_they_were_drawn_under(run_handle_runs, tmp_path):
    from vae_keras.cli import main
    from vae_keras.config import get_config
    from vae_keras.io.manifest import read_manifest
    from vae_keras.training.trainer import Trainer

    run = tmp_path / "boxes"
    Trainer(get_config("boxes", image_size=32, **TINY_LATENT), str(run_handle_runs / "bags"), run,
            progress=False).fit()
    out = tmp_path / "out"
    assert main(["generate", str(run), "--label", "knife", "--n", "4", "--format", "yolo", "--out", str(out),
                 "--quiet", "--steps", "2"]) == 0
    rows = read_manifest(out / "manifest.csv")
    train_boxes = {(b["label"], tuple(b["box"])) for r in read_manifest(run_handle_runs / "bags" / "manifest.csv")
                   if r.split == "train" for b in r.boxes}
    assert len(rows) == 4
    for r in rows:
        assert "knife" in r.labels and any(b["label"] == "knife" for b in r.boxes)
        assert {(b["label"], tuple(float(v) for v in b["box"])) for b in r.boxes} <= \
            {(lab, tuple(float(v) for v in box)) for lab, box in train_boxes}
    yolo = sorted((out / "labels").glob("*.txt"))
    lines = [line for f in yolo for line in f.read_text().splitlines()]
    assert len(yolo) == 4 and len(lines) >= 4 and all(line.split()[0] == "1" for line in lines)   # 1: knife
