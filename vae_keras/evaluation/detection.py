"""A small object detector trained from scratch, and its COCO score: the benchmark's detector arm.

Users train detectors, not multi-label classifiers; so the augmentation benchmark also trains one.
It is a CenterNet (Zhou et al. 2019, "Objects as Points") on a small CNN, in plain Keras: no
pretrained weights, nothing downloaded, no extra library. A box is a peak in a per-class heatmap
at stride 4, with its width, height and sub-cell offset regressed at that cell:

    image (S, S, 1) -> backbone (S/4, S/4, 4w) -> heatmap (S/4, S/4, C)  focal loss on Gaussian peaks
                                                -> size    (S/4, S/4, 2)  L1 at the centres, in cells
                                                -> offset  (S/4, S/4, 2)  L1 at the centres

Training ends with the guard of :func:`vae_keras.evaluation.augmentation.check_not_collapsed`: the
heatmap's focal loss over the last quarter of the steps must fall below that of the best constant
heatmap (:func:`prior_focal_loss`, one probability per class everywhere), or the run raises
:class:`~vae_keras.errors.TrainingCollapsed`.

Decoding keeps the cells that are the maximum of their 3x3 neighbourhood (no NMS needed) and
their top ``k`` scores. :func:`coco_map` scores the boxes with pycocotools (COCO mAP@0.5 and
mAP@0.5:0.95 over the four threat classes), the reference implementation detectors report.

The benchmark's default detector is now KerasHub's RetinaNet (:mod:`vae_keras.evaluation.retinanet`,
``--detector retinanet``), the detector Keras users reach for; this CenterNet stays as
``--detector centernet`` (no extra package; results of benchmark v2 were measured with it), and
:func:`coco_map` here scores both. docs/augmentation.md compares them on the real scans.

Example:
    >>> det = train_detector(x_train, boxes_train, steps=2000, augment=True)
    >>> coco_map(det.predict(x_test), boxes_test, x_test.shape[1])["map50"]
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, List, Sequence

import numpy as np

from vae_keras.io.manifest import CLASSES
from vae_keras.evaluation.metrics import quantize

#: Output stride of the detector's maps.
STRIDE = 4
#: Weight of the size loss (sizes in cells of 4 pixels: ~10x smaller than CenterNet's, whose 0.1 is for pixels).
SIZE_WEIGHT = 1.0


# -- targets ---------------------------------------------------------------------------------------
def targets(boxes: Sequence[dict], size: int):
    """CenterNet targets of one image: ``(heat (s, s, C), size (s, s, 2), offset (s, s, 2), mask (s, s))``, s = size / STRIDE."""
    s = size // STRIDE
    heat = np.zeros((s, s, len(CLASSES)), np.float32)
    wh = np.zeros((s, s, 2), np.float32)
    off = np.zeros((s, s, 2), np.float32)
    mask = np.zeros((s, s), np.float32)
    yy, xx = np.mgrid[0:s, 0:s]
    for b in boxes:
        x1, y1, x2, y2 = (float(v) / STRIDE for v in b["box"])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        px, py = min(s - 1, int(cx)), min(s - 1, int(cy))
        sigma = max(0.5, np.sqrt(max(x2 - x1, 1e-3) * max(y2 - y1, 1e-3)) / 6)
        g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma ** 2))
        k = CLASSES.index(b["label"])
        heat[..., k] = np.maximum(heat[..., k], g)
        wh[py, px] = (x2 - x1, y2 - y1)
        off[py, px] = (cx - px, cy - py)
        mask[py, px] = 1.0
    return heat, wh, off, mask


def _focal_terms(p, pos, weight):
    """CenterNet's focal loss, summed: positives ``(1 - p)^2 (-log p)``, the rest ``(1 - heat)^4 p^2 (-log(1 - p))``."""
    return pos * (1 - p) ** 2 * -np.log(p) + weight * p ** 2 * -np.log(1 - p)


def prior_focal_loss(boxes: Sequence[Sequence[dict]], size: int) -> float:
    """The heatmap loss of the best *constant* heatmap for these boxes: the detector's label prior.

    One probability ``p_c`` per class at every cell, chosen to minimise the focal loss of
    :func:`train_detector` summed over every image's targets, divided by the number of box
    centres (as a training step divides by its batch's). A detector whose heatmap ignores the image
    gets this loss at best; one that learned anything gets less. nan without any box (no reference).
    """
    pos_sum = np.zeros(len(CLASSES))
    neg_weight = np.zeros(len(CLASSES))
    centres = 0.0
    for bs in boxes:
        heat, _, _, mask = targets(bs, size)
        pos = heat >= 1.0 - 1e-6
        pos_sum += pos.sum(axis=(0, 1))
        neg_weight += ((~pos) * (1 - heat) ** 4).sum(axis=(0, 1))
        centres += float(mask.sum())
    grid = np.geomspace(1e-4, 1 - 1e-4, 2000)[:, None]                 # the training step clips p to this range
    best = _focal_terms(grid, pos_sum[None], neg_weight[None]).min(axis=0)   # (C,)
    return float(best.sum() / centres) if centres else float("nan")


def training_batch(x: np.ndarray, boxes: Sequence, batch_size: int, rng: np.random.Generator, augment: bool):
    """One detector training batch: ``batch_size`` images drawn from ``x`` (n, S, S) floats in [0, 1], each
    with :func:`augment_with_boxes` when ``augment``, quantised to 8 bits as a PNG would be.

    Returns ``(images (b, S, S, 1) float32, [boxes of each image])``. Both detectors (the CenterNet here
    and :mod:`vae_keras.evaluation.retinanet`) draw their batches with it, so an arm's images and
    boxes depend on the seed alone, not on the detector.
    """
    idx = rng.choice(len(x), size=batch_size, replace=len(x) < batch_size)
    xb, bb = [], []
    for i in idx:
        img, b = augment_with_boxes(x[i], boxes[i], rng) if augment else (x[i], boxes[i])
        xb.append(img)
        bb.append(b)
    return quantize(np.stack(xb))[..., None], bb                                   # (b, S, S, 1)


def augment_with_boxes(image: np.ndarray, boxes: Sequence[dict], rng: np.random.Generator):
    """Classic augmentation that moves the boxes too: flips, 90-degree rotations, thickness (``I ** g``),
    exposure and noise (:func:`vae_keras.evaluation.augmentation.classic_augment` without the crops)."""
    img = np.asarray(image, np.float32)
    n = img.shape[0]
    bs = [list(map(float, b["box"])) for b in boxes]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        bs = [[n - x2, y1, n - x1, y2] for x1, y1, x2, y2 in bs]
    if rng.random() < 0.5:
        img = img[::-1]
        bs = [[x1, n - y2, x2, n - y1] for x1, y1, x2, y2 in bs]
    for _ in range(int(rng.integers(4))):                 # np.rot90: counter-clockwise, (x, y) -> (y, n - x)
        img = np.rot90(img)
        bs = [[y1, n - x2, y2, n - x1] for x1, y1, x2, y2 in bs]
    img = np.clip(np.clip(img, 1e-4, 1.0) ** rng.uniform(0.7, 1.4) * rng.uniform(0.9, 1.05)
                  + rng.normal(0.0, 0.02, img.shape), 0.0, 1.0)
    return np.ascontiguousarray(img, np.float32), [{"label": b["label"], "box": v} for b, v in zip(boxes, bs)]


# -- the model -------------------------------------------------------------------------------------
def build_detector(size: int, width: int = 16):
    """The CenterNet: a plain CNN to stride 4 with three 1x1 heads; returns a ``keras.Model``."""
    import keras
    from keras import layers

    if size % STRIDE:
        raise ValueError(f"image size must be a multiple of {STRIDE}, got {size}")
    x = inp = keras.Input((size, size, 1))
    for k, w in enumerate((width, 2 * width, 4 * width)):                        # (S, S) -> (S/4, S/4)
        x = layers.Conv2D(w, 3, strides=1 if k == 0 else 2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(w, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(4 * width, 3, padding="same", dilation_rate=2, activation="relu")(x)   # wider view
    heat = layers.Conv2D(len(CLASSES), 1, bias_initializer=keras.initializers.Constant(-2.19), name="heat")(x)
    wh = layers.Conv2D(2, 1, name="size")(x)
    off = layers.Conv2D(2, 1, name="offset")(x)
    return keras.Model(inp, [heat, wh, off], name="centernet")


class Detector:
    """A trained CenterNet: ``predict(images) -> one list of {"label", "box", "score"} per image``."""

    def __init__(self, net, size: int, top_k: int = 20):
        self.net, self.size, self.top_k = net, int(size), int(top_k)
        self.info: dict = {}

    def predict(self, images, batch_size: int = 64) -> List[List[dict]]:
        import tensorflow as tf

        x = np.asarray(images)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        out = []
        for i in range(0, len(x), batch_size):
            heat, wh, off = self.net(x[i:i + batch_size].reshape(-1, self.size, self.size, 1), training=False)
            heat = tf.sigmoid(heat)
            peaks = tf.cast(heat == tf.nn.max_pool2d(heat, 3, 1, "SAME"), tf.float32) * heat
            heat, peaks, wh, off = (np.asarray(v) for v in (heat, peaks, wh, off))
            for p, s, o in zip(peaks, wh, off):
                flat = p.reshape(-1)
                dets = []
                for j in np.argsort(-flat)[:self.top_k]:
                    if flat[j] <= 0.01:
                        break
                    py, px, k = np.unravel_index(j, p.shape)
                    cx, cy = px + o[py, px, 0], py + o[py, px, 1]
                    w, h = max(float(s[py, px, 0]), 0.1), max(float(s[py, px, 1]), 0.1)
                    dets.append({"label": CLASSES[k], "score": float(flat[j]),
                                 "box": [float(STRIDE * (cx - w / 2)), float(STRIDE * (cy - h / 2)),
                                         float(STRIDE * (cx + w / 2)), float(STRIDE * (cy + h / 2))]})
                out.append(dets)
        return out


def train_detector(images, boxes: Sequence[Sequence[dict]], steps: int = 1000, seed: int = 0, batch_size: int = 16,
                   augment: bool = False, width: int = 16, learning_rate: float = 2e-3) -> Detector:
    """Train the CenterNet for exactly ``steps`` Adam steps on ``images`` (n, S, S[, 1]) and their boxes.

    Like :func:`vae_keras.evaluation.augmentation.train_classifier`, every arm of a comparison gets the
    same number of steps, whatever its data's size; ``augment`` applies :func:`augment_with_boxes`.

    Raises:
        TrainingCollapsed: the heatmap loss over the last quarter of the steps is not below that of
            the best constant heatmap (:func:`prior_focal_loss`); runs under
            :data:`~vae_keras.evaluation.augmentation.COLLAPSE_MIN_STEPS` steps are not checked.
    """
    import keras
    import tensorflow as tf

    from vae_keras.evaluation.augmentation import check_not_collapsed, tail_mean

    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    x = x.reshape(len(x), x.shape[1], x.shape[2])
    if len(x) != len(boxes) or len(x) == 0:
        raise ValueError(f"need one box list per image (and at least one image), got {len(x)} and {len(boxes)}")
    size = x.shape[1]
    keras.utils.set_random_seed(seed)
    net = build_detector(size, width)
    opt = keras.optimizers.Adam(learning_rate)
    opt.build(net.trainable_variables)           # now: made in the first step, they would trace the step twice
    rng = np.random.default_rng(seed)
    bs = min(batch_size, len(x))

    @tf.function(autograph=False)                   # no tensor-dependent Python control flow: traces faster
    def step(xb, heat, wh, off, mask):
        with tf.GradientTape() as tape:
            p_heat, p_wh, p_off = net(xb, training=True)
            p = tf.clip_by_value(tf.sigmoid(p_heat), 1e-4, 1 - 1e-4)
            pos = tf.cast(heat >= 1.0 - 1e-6, tf.float32)                      # the centres
            focal = -(pos * (1 - p) ** 2 * tf.math.log(p)
                      + (1 - pos) * (1 - heat) ** 4 * p ** 2 * tf.math.log(1 - p))   # CenterNet's focal loss
            n_pos = tf.maximum(tf.reduce_sum(mask), 1.0)
            m = mask[..., None]
            heat_loss = tf.reduce_sum(focal) / n_pos
            loss = heat_loss + (SIZE_WEIGHT * tf.reduce_sum(m * tf.abs(p_wh - wh))
                                + tf.reduce_sum(m * tf.abs(p_off - off))) / n_pos
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return heat_loss

    heat_losses = []
    for _ in range(int(steps)):
        xb, bb = training_batch(x, boxes, bs, rng, augment)
        heat, wh, off, mask = (np.stack(v) for v in zip(*[targets(b, size) for b in bb]))
        heat_losses.append(step(xb, heat, wh, off, mask))
    det = Detector(net, size)
    det.info = {"steps": int(steps), "heat_loss": tail_mean([float(v) for v in heat_losses]) if heat_losses else
                float("nan"), "prior_heat_loss": prior_focal_loss(boxes, size)}
    check_not_collapsed(det.info["heat_loss"], det.info["prior_heat_loss"], "the detector (CenterNet)", steps,
                        "Its heatmap is no better than a constant: try another seed, a lower learning rate or "
                        "more steps, and check that the boxes match the images.")
    return det


# -- the score -------------------------------------------------------------------------------------
def coco_map(detections: Sequence[Sequence[dict]], truth: Sequence[Sequence[dict]], size: int) -> Dict[str, object]:
    """COCO box mAP of ``detections`` against ``truth`` (one list per image) with pycocotools.

    Returns:
        ``{"map50": mAP@0.5, "map": mAP@0.5:0.95, "ap50": {class: AP@0.5}}`` (a class with no
        ground-truth box scores nan and is left out of COCO's means).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        x1, y1, x2, y2 = (float(v) for v in b)
        return [x1, y1, x2 - x1, y2 - y1]

    gt = {"images": [{"id": i, "width": size, "height": size} for i in range(len(truth))],
          "categories": [{"id": k, "name": c} for k, c in enumerate(CLASSES)], "annotations": []}
    for i, bs in enumerate(truth):
        for b in bs:
            box = xywh(b["box"])
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "iscrowd": 0, "bbox": box,
                                      "area": box[2] * box[3], "category_id": CLASSES.index(b["label"])})
    dets = [{"image_id": i, "category_id": CLASSES.index(d["label"]), "bbox": xywh(d["box"]), "score": d["score"]}
            for i, ds in enumerate(detections) for d in ds]
    if not dets or not gt["annotations"]:
        return {"map50": 0.0, "map": 0.0, "ap50": {c: 0.0 for c in CLASSES}}
    with contextlib.redirect_stdout(io.StringIO()):          # pycocotools prints its progress
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][0, :, :, 0, -1]               # IoU 0.5, all recalls, classes, all areas, 100 dets
    ap50 = {}
    for k, c in enumerate(CLASSES):
        p = prec[:, k]
        ap50[c] = float(np.mean(p[p > -1])) if np.any(p > -1) else float("nan")
    return {"map50": float(ev.stats[1]), "map": float(ev.stats[0]), "ap50": ap50}
