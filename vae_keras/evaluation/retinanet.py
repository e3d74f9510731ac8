"""KerasHub's RetinaNet, built from a config and trained from scratch: the benchmark's detector.

Users of Keras reach for KerasHub's detectors, so the augmentation benchmark trains one:
``keras_hub.models.RetinaNetObjectDetector`` (Lin et al. 2017, "Focal Loss for Dense Object
Detection") on a narrow ``ResNetBackbone`` built from its config (no preset, nothing downloaded):

    image (S, S, 1) -> ResNet (basic blocks)  P3 (S/8), P4 (S/16), P5 (S/32)
                    -> FPN (256 filters, fixed by KerasHub)
                    -> per level, per anchor (3 scales x 3 aspect ratios):
                         class logits (C)  sigmoid focal loss
                         box deltas   (4)  smooth L1 loss, on the anchors matched to a box

Three settings differ from KerasHub's defaults, each for a stated reason:

- ``anchor_size`` 2 (KerasHub: 4). KerasHub's anchors start at 4 x stride = 32 px on P3; at 128 px
  a razor blade is ~13 px and a shuriken ~24 px (:data:`vae_keras.sampling.objects.CROP_SIDES`),
  so no anchor overlaps them by the 0.5 IoU a positive needs and they are never learned. With 2
  they span 16 to 100 px, and a box of ~12 px or more has a positive anchor. (KerasHub's
  ``box_matcher_force_match_for_each_col``, which would match every box to its best anchor, fails
  in 0.32.0 on a batch padded to equal box counts: it gathers the padding column, index out of range.)
- the classification head's bias starts at the prior ``log(pi / (1 - pi))``, pi = 0.01, as the
  paper prescribes. keras-hub 0.32.0 passes ``use_prior_probability`` to the *box* head instead
  (``retinanet_object_detector.py``), leaving the class logits at 0 (p = 0.5 on every anchor).
  Measured on 64-px squares (one batch of 16): the initial classification loss is 117 with the
  bias at 0 and 16 at the prior, against 0.50 for the best constant logits. :func:`build_retinanet` moves it.
- the box loss is smooth L1 with beta 0.11 (Detectron's RetinaNet), not KerasHub's ``Huber(1)``
  (see :class:`RetinaNetSettings`).

Training is the same contract as :func:`vae_keras.evaluation.detection.train_detector` (the
CenterNet): exactly ``steps`` Adam steps of batch ``batch_size``, classic augmentation that moves
the boxes, 8-bit inputs. It ends with the collapse guard: the classification focal loss over the last
quarter of the steps must fall below that of the best *constant* logits (:func:`prior_focal_loss`:
one probability per class on every anchor, computed from the same anchor assignment the training
uses). Why that reference and not the first steps' loss: the first steps' loss depends on the
initialisation (above: 16 or 117 where the best constant scores 0.50, so any run "improves" on
it), while
the best constant is what a network that ignores its input converges to; falling below it is the
definition of having learned something from the pixels. Scores come from
:func:`vae_keras.evaluation.detection.coco_map` (pycocotools), the same as the CenterNet's.

Example:
    >>> det = train_retinanet(x_train, boxes_train, steps=2000, seed=0, augment=True)
    >>> coco_map(det.predict(x_test), boxes_test, x_test.shape[1])["map50"]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from vae_keras.evaluation.detection import training_batch
from vae_keras.evaluation.metrics import quantize
from vae_keras.io.manifest import CLASSES

#: keras-hub's focal loss: ``BinaryFocalCrossentropy(from_logits=True)``, gamma 2, no alpha balancing.
FOCAL_GAMMA = 2.0


@dataclass
class RetinaNetSettings:
    """The RetinaNet of the benchmark, as data (saved with results; ``asdict`` round-trips).

    Attributes:
        stage_filters: filters of the four ResNet stages (P2..P5); narrow, for 2 CPU cores
            (KerasHub's ``ResNetBackbone`` with basic blocks requires the first to be 64, the width
            of its 7x7 stem, which it shares).
        stage_blocks: basic blocks per stage.
        min_level, max_level: the pyramid levels detected on (3..5: strides 8 to 32).
        anchor_size: anchor side in strides (KerasHub's default is 4; see the module docstring).
        head_convs: 3x3 convolutions of 256 filters before each head's logits (paper: 4).
        prior_probability: the class probability every anchor starts at (paper: 0.01).
        box_beta: the box loss is smooth L1 with this beta (Detectron's RetinaNet: 0.1; KerasHub
            compiles ``Huber(delta=1)``, whose gradient is at most 1 and ~0.3 at the deltas a
            trained box is off by: measured on squares at 64 px, its boxes stayed 0.3-0.5 off in
            the deltas and mAP@0.5 was 0.11 after 150 steps).
        learning_rate: Adam's.
        batch_size: images per step.
        score_threshold: detections below this score are dropped before NMS (low, for mAP).
        max_detections: per image, after NMS.
    """

    stage_filters: Tuple[int, ...] = (64, 32, 64, 96)
    stage_blocks: Tuple[int, ...] = (1, 1, 1, 1)
    min_level: int = 3
    max_level: int = 5
    anchor_size: float = 2.0
    head_convs: int = 0
    prior_probability: float = 0.01
    box_beta: float = 0.11
    learning_rate: float = 1e-3
    batch_size: int = 16
    score_threshold: float = 0.05
    max_detections: int = 100

    def __post_init__(self):
        if len(self.stage_filters) != 4 or len(self.stage_blocks) != 4:
            raise ValueError(f"stage_filters and stage_blocks need 4 values (P2..P5), got {self.stage_filters} "
                             f"and {self.stage_blocks}")
        if self.stage_filters[0] != 64:
            raise ValueError(f"KerasHub's ResNetBackbone needs 64 filters in its first stage, got {self.stage_filters}")
        if not 2 <= self.min_level <= self.max_level <= 5:
            raise ValueError(f"need 2 <= min_level <= max_level <= 5, got {self.min_level}, {self.max_level}")
        if not 0 < self.prior_probability < 1:
            raise ValueError(f"prior_probability must be in (0, 1), got {self.prior_probability}")
        self.stage_filters, self.stage_blocks = tuple(self.stage_filters), tuple(self.stage_blocks)

    def to_dict(self) -> dict:
        return asdict(self)


# -- the model -------------------------------------------------------------------------------------
def build_retinanet(size: int, settings: Optional[RetinaNetSettings] = None):
    """A ``keras_hub.models.RetinaNetObjectDetector`` for (size, size, 1) images, boxes ``xyxy`` in pixels.

    Built from config only (no preset, nothing downloaded); its classification bias set to the prior.
    """
    import keras

    try:
        import keras_hub
    except ImportError as e:                      # an optional extra: say how to get it
        raise ImportError("the RetinaNet detector needs keras-hub: pip install keras-hub==0.32.0 "
                          "(or pip install -e '.[benchmark]'); or use --detector centernet") from e
    from keras_hub.layers import AnchorGenerator
    from keras_hub.src.layers.modeling.non_max_supression import NonMaxSuppression
    from keras_hub.src.models.retinanet.retinanet_label_encoder import RetinaNetLabelEncoder

    s = settings or RetinaNetSettings()
    stride = 2 ** s.max_level
    if size % stride:
        raise ValueError(f"image size must be a multiple of {stride} (the stride of P{s.max_level}), got {size}")
    resnet = keras_hub.models.ResNetBackbone(
        input_conv_filters=[s.stage_filters[0]], input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(s.stage_filters), stackwise_num_blocks=list(s.stage_blocks),
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block", image_shape=(size, size, 1))
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=resnet, min_level=s.min_level,
                                                  max_level=s.max_level, use_p5=False, image_shape=(size, size, 1))
    anchors = AnchorGenerator("xyxy", min_level=s.min_level, max_level=s.max_level, num_scales=3,
                              aspect_ratios=[0.5, 1.0, 2.0], anchor_size=s.anchor_size)
    encoder = RetinaNetLabelEncoder(anchors, bounding_box_format="xyxy", encoding_format="center_xywh")
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=len(CLASSES), bounding_box_format="xyxy", anchor_generator=anchors,
        label_encoder=encoder, pre_logits_num_conv_layers=s.head_convs,
        classification_head_prior_probability=s.prior_probability,
        prediction_decoder=NonMaxSuppression("xyxy", from_logits=True, confidence_threshold=s.score_threshold,
                                             max_detections=s.max_detections))
    prior_logit = float(np.log(s.prior_probability / (1 - s.prior_probability)))
    model.classification_head.prediction_layer.bias.assign(np.full(model.classification_head.prediction_layer.bias.shape,
                                                              prior_logit, np.float32))     # the paper's init
    model.box_head.prediction_layer.bias.assign(np.zeros(model.box_head.prediction_layer.bias.shape, np.float32))
    return model


def _padded(boxes: Sequence[Sequence[dict]]):
    """Box lists -> ``(boxes (n, m, 4) float32 xyxy, classes (n, m) float32)``, padded with -1 (no box)."""
    m = max(1, max((len(b) for b in boxes), default=1))
    xy = -np.ones((len(boxes), m, 4), np.float32)
    cls = -np.ones((len(boxes), m), np.float32)
    for i, bs in enumerate(boxes):
        for j, b in enumerate(bs):
            xy[i, j] = [float(v) for v in b["box"]]
            cls[i, j] = CLASSES.index(b["label"])
    return xy, cls


def _focal(p, pos, neg):
    """Summed sigmoid focal loss (gamma 2) of probability ``p`` on ``pos`` positive and ``neg`` negative anchors."""
    return pos * (1 - p) ** FOCAL_GAMMA * -np.log(p) + neg * p ** FOCAL_GAMMA * -np.log(1 - p)


def prior_focal_loss(model, boxes: Sequence[Sequence[dict]], size: int, batch: int = 64) -> float:
    """The classification loss of the best *constant* logits for these boxes: the detector's label prior.

    One probability ``p_c`` per class on every anchor, chosen to minimise the focal loss that
    :func:`train_retinanet` minimises, with the anchors assigned to boxes by ``model``'s own label
    encoder (positives, negatives, ignored), divided by the number of positive anchors (as a
    training step divides by its batch's). A detector whose logits ignore the image gets this loss
    at best; one that learned anything gets less. nan without any box.
    """
    import keras

    pos = np.zeros(len(CLASSES))
    neg = np.zeros(len(CLASSES))
    blank = np.zeros((1, size, size, 1), np.float32)
    for i in range(0, len(boxes), batch):
        xy, cls = _padded(boxes[i:i + batch])
        _, labels = model.label_encoder(images=np.repeat(blank, len(xy), 0), gt_boxes=xy, gt_classes=cls)
        labels = keras.ops.convert_to_numpy(labels).reshape(-1)           # anchor classes; -1 background, -2 ignored
        counted = labels != -2
        for k in range(len(CLASSES)):
            pos[k] += np.sum(labels == k)
            neg[k] += np.sum(counted & (labels != k))
    n_pos = pos.sum()
    if n_pos == 0:
        return float("nan")
    grid = np.geomspace(1e-6, 1 - 1e-6, 4000)[:, None]
    # keras' BinaryFocalCrossentropy averages over the classes of an anchor, hence the / C
    return float(_focal(grid, pos[None], neg[None]).min(axis=0).sum() / len(CLASSES) / n_pos)


# -- training and prediction -----------------------------------------------------------------------
class RetinaNetDetector:
    """A trained RetinaNet: ``predict(images) -> one list of {"label", "box", "score"} per image``."""

    def __init__(self, model, size: int, settings: RetinaNetSettings):
        self.model, self.size, self.settings = model, int(size), settings
        self.info: dict = {}

    def predict(self, images, batch_size: int = 64) -> List[List[dict]]:
        x = np.asarray(images)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        x = quantize(x.reshape(-1, self.size, self.size))[..., None]         # (n, S, S, 1), 8-bit levels
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            y = self.model.decode_predictions(self.model(xb, training=False), xb)
            boxes, scores, classes, counts = (np.asarray(y[k]) for k in ("boxes", "confidence", "labels",
                                                                          "num_detections"))
            for b, s, c, n in zip(boxes, scores, classes, counts):
                out.append([{"label": CLASSES[int(c[j])], "score": float(s[j]),
                             "box": [float(v) for v in np.clip(b[j], 0, self.size)]}
                            for j in range(int(n)) if 0 <= int(c[j]) < len(CLASSES)])
        return out


def train_retinanet(images, boxes: Sequence[Sequence[dict]], steps: int = 1000, seed: int = 0,
                    augment: bool = False, settings: Optional[RetinaNetSettings] = None) -> RetinaNetDetector:
    """Train the RetinaNet for exactly ``steps`` Adam steps on ``images`` (n, S, S[, 1]) and their boxes.

    Args:
        images: uint8 or float in [0, 1]; S a multiple of 32.
        boxes: one list of ``{"label", "box": [x1, y1, x2, y2]}`` (pixels) per image.
        steps: Adam steps (every arm of a comparison gets the same number, whatever its data's size).
        seed: weights, batches and augmentation.
        augment: classic augmentation that moves the boxes (:func:`~vae_keras.evaluation.detection.augment_with_boxes`).
        settings: :class:`RetinaNetSettings` (default: the benchmark's).

    Returns:
        a :class:`RetinaNetDetector`; its ``info`` holds the steps, the last quarter's mean
        classification loss and the prior's (:func:`prior_focal_loss`).

    Raises:
        ValueError: images and box lists differ in number, or there is no image.
        TrainingCollapsed: the classification loss over the last quarter of the steps is not below
            that of the best constant logits; runs under
            :data:`~vae_keras.evaluation.augmentation.COLLAPSE_MIN_STEPS` steps are not checked.
    """
    import keras
    import tensorflow as tf

    from vae_keras.evaluation.augmentation import check_not_collapsed, tail_mean

    s = settings or RetinaNetSettings()
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if len(x) == 0 or len(x) != len(boxes):
        raise ValueError(f"need one box list per image (and at least one image), got {len(x)} and {len(boxes)}")
    x = x.reshape(len(x), x.shape[1], x.shape[2])
    size = x.shape[1]
    keras.utils.set_random_seed(seed)
    model = build_retinanet(size, s)
    opt = keras.optimizers.Adam(s.learning_rate, clipnorm=10.0)
    opt.build(model.trainable_variables)         # now: made in the first step, they would trace the step twice
    focal = keras.losses.BinaryFocalCrossentropy(gamma=FOCAL_GAMMA, from_logits=True, reduction="sum")
    huber = keras.losses.Huber(delta=s.box_beta, reduction="sum")          # / beta: smooth L1 (slope 1)
    rng = np.random.default_rng(seed)
    bs = min(s.batch_size, len(x))

    @tf.function
    def step(xb, gt_boxes, gt_classes):
        box_t, cls_t = model.label_encoder(images=xb, gt_boxes=gt_boxes, gt_classes=gt_classes)   # (b, A, 4), (b, A)
        positive = tf.cast(cls_t > -1.0, tf.float32)
        n_pos = tf.maximum(tf.reduce_sum(positive), 1.0)
        cls_w = tf.cast(tf.not_equal(cls_t, -2.0), tf.float32) / n_pos                        # ignored anchors: 0
        onehot = tf.one_hot(tf.cast(cls_t, tf.int32), len(CLASSES))                              # (b, A, C)
        with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            cls_loss = focal(onehot, pred["cls_logits"], sample_weight=cls_w)
            box_loss = huber(box_t, pred["bbox_regression"], sample_weight=positive / n_pos) / s.box_beta
            loss = cls_loss + box_loss
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return cls_loss, box_loss

    cls_losses, box_losses = [], []
    for _ in range(int(steps)):
        xb, bb = training_batch(x, boxes, bs, rng, augment)
        gt_boxes, gt_classes = _padded(bb)
        c, b = step(xb, gt_boxes, gt_classes)
        cls_losses.append(float(c))
        box_losses.append(float(b))
    det = RetinaNetDetector(model, size, s)
    det.info = {"steps": int(steps), "cls_loss": tail_mean(cls_losses) if cls_losses else float("nan"),
                "box_loss": tail_mean(box_losses) if box_losses else float("nan"),
                "prior_cls_loss": prior_focal_loss(model, boxes, size), "params": int(model.count_params())}
    check_not_collapsed(det.info["cls_loss"], det.info["prior_cls_loss"], "the detector (RetinaNet)", steps,
                        "Its class logits are no better than constants: try another seed, a lower learning rate "
                        "or more steps, and check that the boxes match the images.")
    return det
