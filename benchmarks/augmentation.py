"""Do our synthetic images help a threat classifier, and a detector? The augmentation benchmark (v3).

A small multi-label CNN (handgun, knife, razor blade, shuriken; ``vae_keras.evaluation.metrics``'
``ThreatClassifier``) is trained from scratch, with the same recipe and the same number of Adam
steps, on a small real training subset and on that subset plus each kind of extra data:

    real               the subset alone (fraction of the training split, drawn per seed)
    classic            + flips, 90-degree rotations, crops, exposure/thickness changes, noise (on the fly)
    tip                + threat image projection: the subset's boxed threats cut out and composited
                         (Beer-Lambert, multiplicatively) into the subset's bags
    ours               + generated threats in the subset's own bags: an object VAE trained
                         ``--object-minutes`` on the subset's threats, its threats inserted at the object
                         set's scale, rotated, inside the bag (``vae_keras.sampling.insert``; exact boxes)
    sim                + simulated threats (the AXIS recipe): threats of the phantom renderer
                         (``--sim-bags`` phantom bags, their threats cut into an object set) inserted
                         into the subset's own bags by the Beer-Lambert product, exactly as ``ours``
                         inserts generated ones (``vae_keras.sampling.insert``; the bags' boxes kept,
                         new boxes exact, inside the bag, not overlapping them). On phantom data this
                         arm is an oracle: its threats come from the renderer that drew the test threats
    gen                + generated threats in the subset's own bags, inserted as ``ours`` inserts them, from
                         the threat generator (``--config threats``: a latent diffusion model over threat
                         crops at half the bag's side): pre-trained once per work folder on the ``sim``
                         arm's phantom threats (``--gen-pretrain-epochs``, ``OUT/gen_pretrained``), then
                         fine-tuned from those weights, both stages, on the subset's own threats
                         (``--gen-epochs``, ``OUT/<subset>/gen``), the recipe of docs/own_scans.md
    gen+tip            + generated and TIP images alternately (gen, tip, gen, ...): half each at the same
                         total ratio, the first images of the ``gen`` and ``tip`` pools
    composite          + whole generated bags: VAE bags with the object VAE's threats (no real pixel)
    vae, hybrid        + conditional-VAE samples; + VAE bags with the subset's real threats
    classic+X          X with classic augmentation on every batch (the v2 arms all have it)
    X@R                X at R synthetic images per real one (``--ratios 1,2,4`` adds them for ``--ratio-arms``)
    cas                Classification Accuracy Score (Ravuri & Vinyals 2019): trained on whole
                         generated bags only; its per-class AUROC as a fraction of ``real``'s
    det:X              the same data for a detector trained from scratch, COCO mAP@0.5 and @0.5:0.95
                         (pycocotools): ``--detector centernet`` (default), the CenterNet written here
                         (``vae_keras.evaluation.detection``), or ``retinanet``, KerasHub's RetinaNet on a
                         narrow ResNet (``vae_keras.evaluation.retinanet``): on 10 real GDXray bags at
                         comparable CPU time the CenterNet scored mAP@0.5 0.35, the RetinaNet 0.07
                         (docs/augmentation.md). A run whose loss never beats the label prior
                         (``TrainingCollapsed``) is recorded as collapsed, a row with a note

The default arms are issue #15's: real, classic, classic+tip, classic+ours, classic+composite,
cas, det:classic, det:classic+tip, det:classic+ours. Synthetic images are added at
``--synthetic-ratio`` per real image (2: a subset of 140 gets 280). Scored on the whole real test
split: per-class AUROC and average precision (keras.metrics.AUC), mean and standard deviation
over ``--seeds`` seeds (the seed draws the subset, trains the VAEs, the classifier and the
detector). Results go to ``OUT/results.json`` after every (fraction, seed), so a killed run
continues where it stopped; ``--report`` writes the markdown table and the plot.

    python benchmarks/augmentation.py --data data/phantoms128 --size 128 --fractions 0.1,0.25 --seeds 3 \\
        --ratios 1,2,4 --vae-minutes 10 --object-minutes 3 --classifier-steps 800 --detector-steps 3000 \\
        --out build/augmentation_v2 --report figures/augmentation_v2.md
    python benchmarks/augmentation.py --quick --out build/aug_quick     # every arm on 48 phantoms, ~45 s

Any prepared folder works (``python -m vae_keras prepare SRC OUT``): boxes are needed for the
tip, ours, gen, composite, hybrid and detector arms (arms without boxes available are reported as skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vae_keras.io.atomic import atomic_write_text  # noqa: E402
from vae_keras.io.manifest import CLASSES, read_manifest  # noqa: E402

ARMS = ("real", "classic", "vae", "tip", "hybrid", "ours", "sim", "classic+vae", "classic+tip", "classic+hybrid",
        "classic+ours", "classic+sim", "gen", "classic+gen", "classic+gen+tip", "composite", "classic+composite", "cas",
        "det:real", "det:classic", "det:classic+tip", "det:classic+ours", "det:classic+sim", "det:classic+gen",
        "det:classic+gen+tip", "det:classic+composite")
#: Issue #15's benchmark v2: the arms run by default.
V2_ARMS = ("real", "classic", "classic+tip", "classic+ours", "classic+composite", "cas",
           "det:classic", "det:classic+tip", "det:classic+ours")
NEEDS_VAE = {"vae", "hybrid", "composite", "cas"}                       # sources made by the bag VAE
NEEDS_OBJECTS = {"ours", "composite", "cas"}                            # ... and by the object VAE
NEEDS_GEN = {"gen", "gen+tip"}                                          # ... and by the threat generator
NEEDS_BOXES = {"tip", "hybrid", "ours", "composite", "cas"} | NEEDS_GEN
#: Sources made of phantom threats: the sim arm's, and those the threat generator is pre-trained on.
NEEDS_PHANTOMS = {"sim"} | NEEDS_GEN
#: A mixed source: the pools whose images it takes alternately (half each, :func:`interleave`).
MIXED = {"gen+tip": ("gen", "tip")}
#: The threat generator's prior trains this many epochs per autoencoder epoch: about the split the
#: 10-minute runs of docs/own_scans.md got at ``vae_share`` 0.5 (16-17 autoencoder, 30-33 prior epochs).
GEN_PRIOR_PER_EPOCH = 2


def split_arm(arm: str):
    """``"det:classic+ours@4"`` -> ``(model "detector"|"classifier", base "classic+ours", source "ours", ratio 4.0|None)``.

    ``source`` is the pool of extra images (None: the real subset only; ``"gen+tip"`` for
    ``classic+gen+tip``, a pool mixed of two, :data:`MIXED`); ``@R`` sets the synthetic-to-real
    ratio of that arm (default ``--synthetic-ratio``). ``cas`` is the
    Classification Accuracy Score arm: whole generated bags (composites) *only*, no real image.
    """
    model = "detector" if arm.startswith("det:") else "classifier"
    name, _, ratio = arm[4:].partition("@") if model == "detector" else arm.partition("@")
    if name not in ARMS or (model == "detector" and "det:" + name not in ARMS):
        raise ValueError(arm)
    source = {"real": None, "classic": None, "cas": "composite"}.get(name, name.replace("classic+", ""))
    return model, name, source, float(ratio) if ratio else None


def arm_order(arm: str):
    model, name, _, ratio = split_arm(arm)
    return (model == "detector", ARMS.index(name if model == "classifier" else "det:" + name), ratio or 0.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a prepared data set (train/ test/ manifest.csv); --quick makes a tiny one")
    p.add_argument("--out", default="build/augmentation", help="work folder: VAE runs, results.json")
    p.add_argument("--size", type=int, default=64, help="image side for VAE and classifier (default 64)")
    p.add_argument("--fractions", default="0.1,0.25", help="real training subsets, fractions of the train split")
    p.add_argument("--seeds", type=int, default=3, help="repetitions (subset, VAE and classifier seeds 0..k-1)")
    p.add_argument("--arms", default=",".join(V2_ARMS),
                   help=f"comma-separated arms, from {', '.join(ARMS)}; ARM@R sets its synthetic-to-real ratio "
                        "(default: the v2 arms)")
    p.add_argument("--ratios", default="",
                   help="also run --ratio-arms at these synthetic-to-real ratios, e.g. 1,2,4")
    p.add_argument("--ratio-arms", default="classic+tip,classic+ours", help="the arms --ratios applies to")
    p.add_argument("--only", default="",
                   help="run only these of the arms now (the rest later, by the same command without --only): "
                        "the pools are sized for all the arms, so both runs train on the same images")
    p.add_argument("--synthetic-ratio", type=float, default=2.0, help="synthetic images per real image (default 2)")
    p.add_argument("--vae-config", default="conditional", help="named VAE configuration (default conditional)")
    p.add_argument("--vae-minutes", type=float, default=2.0, help="training budget of each VAE (minutes)")
    p.add_argument("--object-minutes", type=float, default=1.0,
                   help="training budget of the object VAE of the composite, ours and cas arms (minutes)")
    p.add_argument("--vae-epochs", type=int, default=0,
                   help="train each bag VAE for this many epochs instead of --vae-minutes: a fixed amount of "
                        "work, so the result does not depend on what else runs on the machine (0: minutes)")
    p.add_argument("--object-epochs", type=int, default=0,
                   help="likewise for the object VAE, instead of --object-minutes (0: minutes)")
    p.add_argument("--classifier-steps", type=int, default=500, help="Adam steps of every classifier")
    p.add_argument("--detector-steps", type=int, default=3000, help="Adam steps of every detector (det: arms)")
    p.add_argument("--detector", choices=("centernet", "retinanet"), default="centernet",
                   help="the det: arms' detector: the CenterNet written here (default: 5x the RetinaNet's mAP@0.5 "
                        "on 10 real bags at comparable CPU time, docs/augmentation.md) or KerasHub's RetinaNet")
    p.add_argument("--sim-bags", type=int, default=300,
                   help="phantom bags rendered for the sim arm's threats (once, in OUT/sim_threats); the gen arms' "
                        "generator is pre-trained on the same threats")
    p.add_argument("--gen-pretrain-epochs", type=int, default=60,
                   help="autoencoder epochs of the gen arms' threat generator on the phantom threats (once, in "
                        f"OUT/gen_pretrained; its diffusion prior trains {GEN_PRIOR_PER_EPOCH}x as many epochs)")
    p.add_argument("--gen-epochs", type=int, default=100,
                   help="autoencoder epochs of its fine-tuning on each subset's threats (OUT/<subset>/gen; prior "
                        f"{GEN_PRIOR_PER_EPOCH}x as many)")
    p.add_argument("--cut", choices=("box", "alone"), default="box",
                   help="how the subset's boxed threats are cut from their bags for TIP and for the gen arms' "
                        "fine-tuning (vae_keras.sampling.tip.CUTS): box (default) keeps the box with the bag's clutter "
                        "in it (the generator's object set drops transmissions above 0.6), alone divides out the bag "
                        "behind the threat and drops what stays above 0.85; the ours arm keeps box")
    p.add_argument("--batch-size", type=int, default=32, help="classifier batch size")
    p.add_argument("--width", type=int, default=16, help="classifier base width (metrics.small_cnn)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N train and N test images (0: all)")
    p.add_argument("--report", help="write the markdown table here (and a PNG plot next to it)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from OUT/results.json as it stands (also mid-run)")
    p.add_argument("--quick", action="store_true",
                   help="every arm end to end on a few images in about a minute (a smoke test, not a result): "
                        "48 phantoms at 32x32 unless --data, 1 seed, one epoch per VAE, 20 steps per model")
    args = p.parse_args(argv)
    if args.quick or os.environ.get("XRAY_VAE_QUICK") == "1" and args.data is None:
        args.quick = True
        args.size, args.fractions, args.seeds, args.limit = 32, "0.5", 1, args.limit or 48
        args.vae_minutes = args.object_minutes = 0.0
        args.classifier_steps, args.detector_steps, args.width = 20, 20, 4
        args.sim_bags = min(args.sim_bags, 24)
        args.gen_pretrain_epochs, args.gen_epochs = 1, 1
        args.ratios = args.ratios or "1,2"
    elif args.data is None:
        p.error("--data is required (or --quick)")
    args.fractions = [float(f) for f in str(args.fractions).split(",") if f.strip()]
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for r in [float(v) for v in str(args.ratios).split(",") if v.strip()]:
        if r != args.synthetic_ratio:                          # at --synthetic-ratio it is the plain arm
            args.arms += [f"{a.strip()}@{r:g}" for a in args.ratio_arms.split(",") if a.strip()]
    bad = []
    for a in args.arms:
        try:
            split_arm(a)
        except ValueError:
            bad.append(a)
    if bad:
        p.error(f"unknown arm(s) {bad}; choose from {ARMS} (ARM@R for a ratio)")
    args.only = [a.strip() for a in args.only.split(",") if a.strip()]
    if set(args.only) - set(args.arms):
        p.error(f"--only {sorted(set(args.only) - set(args.arms))}: not among the arms {args.arms}")
    if not all(0 < f <= 1 for f in args.fractions):
        p.error("fractions must be in (0, 1]")
    if args.gen_pretrain_epochs < 1 or args.gen_epochs < 1:
        p.error("--gen-pretrain-epochs and --gen-epochs must be at least 1")
    return args


# -- building blocks --------------------------------------------------------------------------------
def train_vae(subset_dir: Path, run_dir: Path, args, seed: int):
    """The conditional VAE on the subset only, for ``--vae-epochs`` (else ``--vae-minutes``); returns
    (model, sampler, label prior)."""
    from vae_keras.config import get_config
    from vae_keras.training.run import open_run
    from vae_keras.training.trainer import train

    if (run_dir / "sampler_done").is_file():
        run = open_run(run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = get_config(args.vae_config, quick=False, image_size=args.size, epochs=args.vae_epochs or 100_000,
                         seed=seed)
        run = train(cfg, subset_dir, run_dir, minutes=None if args.vae_epochs else args.vae_minutes,
                    progress=False).run
        atomic_write_text(run_dir / "sampler_done", "1\n")
    return run.model, run.sampler, run.label_prior.sample


def train_objects(subset_dir: Path, work: Path, args, seed: int):
    """The object VAE on the subset's threats only, for ``--object-epochs`` (else ``--object-minutes``);
    returns (model, sampler)."""
    from vae_keras.sampling.objects import load_objects, train_object_vae

    run_dir = work / "objects"
    if not (run_dir / "sampler_done").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        train_object_vae(subset_dir, work / "objects_data", run_dir, args.size, args.object_minutes, seed=seed,
                         epochs=args.object_epochs or None)
        atomic_write_text(run_dir / "sampler_done", "1\n")
    return load_objects(run_dir)


def names_of(y) -> list:
    return [[c for c, v in zip(CLASSES, row) if v > 0.5] for row in y]


def phantom_objects(folder: Path, size: int, n_bags: int, seed: int = 7) -> Path:
    """The phantom renderer's threats as an object set, ``folder/objects`` (made once): the sim arm's
    threats, and what the gen arms' threat generator is pre-trained on.

    ``n_bags`` phantom bags at ``size`` (every one with threats; rendered once into ``folder/bags``)
    are cut into an object set (:func:`vae_keras.sampling.objects.write_object_dataset`: each threat a
    transmission map at its size in the bag, centred on a canvas of half the bag, faint clutter
    dropped), as ``benchmarks/threats.py`` makes its object set. ``seed`` 7, not the phantom data
    sets' 0, so on phantom data no sim threat is a copy of a test image's (the arm is still an oracle there).
    """
    from data_prep.phantoms import write_phantom_dataset
    from vae_keras.sampling.objects import write_object_dataset

    objects = folder / "objects"
    if not (objects / "manifest.csv").is_file():
        write_phantom_dataset(folder / "bags", n=int(n_bags), size=int(size), seed=seed, benign_fraction=0.0,
                              progress=False, workers=1)
        write_object_dataset(folder / "bags", objects, int(size), progress=False)
    return objects


def phantom_threats(folder: Path, size: int, n_bags: int, seed: int = 7) -> list:
    """The threats of :func:`phantom_objects` as :class:`~vae_keras.sampling.tip.ThreatCrop` s (the sim arm's)."""
    from vae_keras.sampling import tip

    objects = phantom_objects(folder, size, n_bags, seed)
    out = []
    for split in ("train", "test"):               # both: on real data the phantoms' split means nothing
        try:
            out += tip.crops_from_prepared(objects, split)
        except ValueError:                        # no such split
            pass
    return out


def for_cut(name: str, cut: str) -> str:
    """A work folder's name for threats cut with ``cut``: ``name`` for the default box cut (the folders
    of earlier runs), ``name_<cut>`` for another."""
    return name if cut == "box" else f"{name}_{cut}"


def subset_objects(subset_dir: Path, work: Path, size: int, cut: str = "box") -> Path:
    """The subset's own threats cut out (``cut``: :data:`~vae_keras.sampling.objects.OBJECT_CUTS`) into an
    object set, ``work/objects_data`` (made once; with the box cut the one :func:`train_objects` makes
    for the object VAE, so the ours and gen arms share it), ``work/objects_data_<cut>`` for another cut."""
    from vae_keras.sampling.objects import write_object_dataset

    objects = work / for_cut("objects_data", cut)
    if not (objects / "manifest.csv").is_file():
        write_object_dataset(subset_dir, objects, size, progress=False, cut=cut)
    return objects


#: What ``--quick`` changes in the threat generator (a smoke test, not a result): two levels instead of three
#: in both stages and narrow layers, so that fewer variables are traced (most of a one-epoch run's time).
QUICK_GENERATOR = dict(latent_factor=2, encoder_filters=(8, 16), decoder_filters=(16, 8), prior_widths=(16, 32))


def train_generator(objects: Path, run_dir: Path, size: int, epochs: int, seed: int, init_from=None,
                    quick: bool = False) -> Path:
    """The threat generator (``--config threats`` at the object canvas of ``size``-pixel bags) trained on
    the object set ``objects`` into ``run_dir``; returns ``run_dir``.

    Fixed work, not minutes (a benchmark's result must not depend on the machine's load): ``epochs``
    autoencoder epochs, :data:`GEN_PRIOR_PER_EPOCH` times as many prior epochs (``quick``: the
    shallow generator of :data:`QUICK_GENERATOR`). ``init_from``: a run
    whose weights start both stages (fine-tuning). A finished run (``sampler_done``) is kept as it
    is; an interrupted one continues from its last checkpoint (``resume``, which starts a new run
    when there is none), so a killed benchmark loses at most an epoch.
    """
    from vae_keras.config import get_config
    from vae_keras.sampling.objects import object_canvas
    from vae_keras.training.trainer import Trainer

    if not (run_dir / "sampler_done").is_file():
        config = get_config("threats", quick=False, image_size=object_canvas(size), epochs=int(epochs),
                            prior_epochs=GEN_PRIOR_PER_EPOCH * int(epochs), seed=seed,
                            **(QUICK_GENERATOR if quick else {}))
        Trainer(config, str(objects), run_dir, resume=True, progress=False, callbacks=(),     # no GIF frames
                init_from=None if init_from is None else str(init_from)).fit()
        atomic_write_text(run_dir / "sampler_done", "1\n")
    return run_dir


def threat_lists(classes, n: int, seed: int) -> list:
    """``n`` lists of one or two classes drawn from ``classes`` (a class per threat of the subset, so
    with the subset's class frequencies): what each image of an insertion pool gets."""
    rng = np.random.default_rng(seed)
    return [list(rng.choice(classes, size=int(rng.integers(1, 3)))) for _ in range(n)]


def interleave(first: tuple, second: tuple, n: int) -> tuple:
    """``n`` images of two pools ``(images, labels, boxes)`` taken alternately (``first[0], second[0],
    first[1], ...``): any leading part holds half of each, so arms of a mixed source at lower ratios
    take the first ones, as for any pool; ``first`` gets the odd one."""
    images = np.empty((n,) + first[0].shape[1:], np.float32)                  # (n, S, S, 1)
    labels = np.empty((n,) + first[1].shape[1:], np.float32)                  # (n, C)
    boxes = [None] * n
    for pool, start in ((first, 0), (second, 1)):
        m = len(range(start, n, 2))
        images[start::2], labels[start::2], boxes[start::2] = pool[0][:m], pool[1][:m], list(pool[2][:m])
    return images, labels, boxes


def subset_scales(bag_boxes, size: int, fallback: dict) -> dict:
    """Per class, the longest side of the subset's own boxes as fractions of the bag's side (what a
    user knows of their threats' sizes); ``fallback``'s for the classes the subset lacks."""
    out = {c: list(v) for c, v in fallback.items()}
    own: dict = {}
    for bs in bag_boxes:
        for b in bs:
            x1, y1, x2, y2 = b["box"]
            own.setdefault(b["label"], []).append(max(x2 - x1, y2 - y1) / float(size))
    out.update(own)
    return {c: np.asarray(v, np.float32) for c, v in out.items()}


def make_pools(args, seed, xs_u8, rows, idx, crops, work: Path, tag: str, n_pool: dict) -> tuple:
    """The extra images of every source the arms need: ``{source: (images, labels, boxes)}``, and timings.

    ``n_pool[source]`` images each (the largest ratio asked for it); an arm at a lower ratio takes
    the first ones, so arms at different ratios share their images. A mixed source (:data:`MIXED`)
    interleaves the first images of its parts, which ``n_pool`` must name too (:func:`pool_sizes`).
    """
    import keras

    from vae_keras.evaluation.augmentation import subset_dataset
    from vae_keras.sampling import tip
    from vae_keras.sampling.generate import sample_images
    from vae_keras.sampling.insert import insert_threats, object_scales
    from vae_keras.sampling.objects import composite_samples, open_objects

    pools, timing = {}, {}
    bag_boxes = [rows[i].boxes_scaled for i in idx]
    sources = set(n_pool)
    if not crops:                                                  # nothing boxed in the subset
        sources -= NEEDS_BOXES
    sub_dir = subset_dataset(args.data, [rows[i].row for i in idx], work / tag / "data") if sources & (
        NEEDS_VAE | NEEDS_OBJECTS | NEEDS_GEN) else None
    objects = None
    if sources & NEEDS_OBJECTS:
        t0 = time.monotonic()
        objects, object_sampler = train_objects(sub_dir, work / tag, args, seed)
        timing["objects_train_s"] = time.monotonic() - t0
    if sources & NEEDS_VAE:
        t0 = time.monotonic()
        model, sampler, label_prior = train_vae(sub_dir, work / tag / "vae", args, seed)
        timing["vae_train_s"] = time.monotonic() - t0
        n = max(n_pool[s] for s in sources & NEEDS_VAE)
        syn_labels = label_prior(n, seed)                                      # (n, C) subset frequencies
        per = names_of(syn_labels)
        if "vae" in sources:
            pools["vae"] = (sample_images(model, n, seed=seed, labels=per, sampler=sampler), syn_labels, None)
        if "hybrid" in sources:
            pools["hybrid"] = tip.project_labels(sample_images(model, n, seed=seed + 1, sampler=sampler),
                                                 per, crops, seed=seed)
        if "composite" in sources:
            t0 = time.monotonic()
            pools["composite"] = composite_samples(model, objects, per, seed=seed + 2, bag_sampler=sampler,
                                                   object_sampler=object_sampler)
            timing["composite_s"] = time.monotonic() - t0
        del model
        keras.backend.clear_session()
    if "tip" in sources:
        t0 = time.monotonic()
        pools["tip"] = tip.tip_images(xs_u8, crops, n_pool["tip"], seed=seed, bag_boxes=bag_boxes)[:3]
        timing["tip_s"] = time.monotonic() - t0
    if "ours" in sources:                     # generated threats in the subset's own bags, TIP's recipe otherwise
        t0 = time.monotonic()
        per = threat_lists([c.label for c in crops], n_pool["ours"], seed + 3)   # the subset's class frequencies
        images, labels, boxes, _ = insert_threats(xs_u8, objects, per, seed=seed + 3, bag_boxes=bag_boxes,
                                                  scales=object_scales(work / tag / "objects_data"),
                                                  sampler=object_sampler)
        pools["ours"] = (images, labels, boxes)
        timing["ours_s"] = time.monotonic() - t0
    if "sim" in sources:                     # the phantom renderer's threats in the subset's own bags (AXIS)
        t0 = time.monotonic()
        sim = phantom_threats(work / "sim_threats", args.size, args.sim_bags)
        classes = [c.label for c in crops] or sorted({c.label for c in sim})   # the subset's class frequencies
        per = threat_lists(classes, n_pool["sim"], seed + 4)
        stats: dict = {}
        images, labels, boxes, _ = insert_threats(
            xs_u8, sim, per, seed=seed + 4, bag_boxes=bag_boxes, fewer_if_no_room=True, stats=stats,
            scales=subset_scales(bag_boxes, args.size, object_scales(work / "sim_threats" / "objects")))
        pools["sim"] = (images, labels, boxes)
        timing["sim_dropped"] = stats.get("dropped", 0)       # threats no bag had room for (real bags hold some)
        timing["sim_s"] = time.monotonic() - t0
    if "gen" in sources:                      # the threat generator's threats in the subset's own bags
        t0 = time.monotonic()
        pretrained = train_generator(phantom_objects(work / "sim_threats", args.size, args.sim_bags),
                                     work / "gen_pretrained", args.size, args.gen_pretrain_epochs, seed=0,
                                     quick=args.quick)
        timing["gen_pretrain_s"] = time.monotonic() - t0                      # ~0 once made, for every subset
        t0 = time.monotonic()
        own = subset_objects(sub_dir, work / tag, args.size, args.cut)
        gen = open_objects(train_generator(own, work / tag / for_cut("gen", args.cut), args.size, args.gen_epochs,
                                           seed=seed, init_from=pretrained, quick=args.quick))
        timing["gen_train_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        per = threat_lists([c.label for c in crops], n_pool["gen"], seed + 5)   # the subset's class frequencies
        stats = {}
        images, labels, boxes, _ = insert_threats(xs_u8, gen.model, per, seed=seed + 5, bag_boxes=bag_boxes,
                                                  scales=object_scales(own), sampler=gen.sampler,
                                                  object_name=gen.name, fewer_if_no_room=True, stats=stats)
        pools["gen"] = (images, labels, boxes)
        timing["gen_dropped"] = stats.get("dropped", 0)
        timing["gen_s"] = time.monotonic() - t0
        del gen
        keras.backend.clear_session()
    for mixed, parts in MIXED.items():        # gen+tip: the first images of its parts, alternately
        if mixed in sources and all(part in pools for part in parts):
            pools[mixed] = interleave(*(pools[part] for part in parts), n_pool[mixed])
    return pools, timing


def pool_sizes(arms, k: int, ratio: float) -> dict:
    """``{source: images}`` the pools need for ``arms`` with ``k`` real images: the largest ratio asked
    for each source (default ``ratio``), and for a mixed source (:data:`MIXED`) half of its own from
    each of its parts (the odd one from the first)."""
    n_pool: dict = {}
    for arm in arms:
        _, _, source, r = split_arm(arm)
        if source is None:
            continue
        n = int(round((r or ratio) * k))
        wants = [(source, n)] + [(part, (n + 1 - j) // 2) for j, part in enumerate(MIXED.get(source, ()))]
        for s, m in wants:
            n_pool[s] = max(n_pool.get(s, 0), m)
    return n_pool


def draw_subset(x, rows, fraction: float, seed: int, cut: str = "box") -> tuple:
    """The real training subset of (``fraction``, ``seed``): its indices into the train split (sorted;
    at least 4) and its boxed threats cut out (``cut``: :data:`~vae_keras.sampling.tip.CUTS`) as
    :class:`~vae_keras.sampling.tip.ThreatCrop` s."""
    from vae_keras.sampling import tip

    k = max(4, int(round(fraction * len(x))))
    idx = np.sort(np.random.default_rng(1000 + seed).permutation(len(x))[:k])
    crops = tip.crops_from_arrays(x[idx], [rows[i].boxes for i in idx], [rows[i].native for i in idx],
                                  **tip.CUTS[cut])
    return idx, crops


def run_one(args, fraction, seed, train_set, test_set, work: Path, arms=None) -> list:
    """``arms`` (default: every arm) for one (fraction, seed): returns one record per arm.

    Each pool of synthetic images is sized for the largest ratio among *all* ``args.arms``, so an
    arm gets the same images whether it runs with the others or alone later (``--only``).
    """
    arms = list(args.arms if arms is None else arms)
    import keras

    from vae_keras.evaluation.augmentation import classic_augment, score, train_classifier
    from vae_keras.errors import TrainingCollapsed
    from vae_keras.evaluation.detection import coco_map

    x, y, rows = train_set
    x_test, y_test, boxes_test = test_set
    idx, crops = draw_subset(x, rows, fraction, seed, args.cut)
    k = len(idx)
    xs, ys = x[idx].astype(np.float32) / 255.0, y[idx]                       # (k, S, S, 1) in [0, 1]
    real_boxes = [rows[i].boxes_scaled for i in idx]
    tag = f"f{fraction:g}-s{seed}"
    n_pool = pool_sizes(args.arms, k, args.synthetic_ratio)
    needed = {split_arm(a)[2] for a in arms}
    needed |= {part for s in needed for part in MIXED.get(s, ())}        # a mixed pool is made of its parts
    pools, timing = make_pools(args, seed, x[idx], rows, idx, crops, work, tag,
                               {s: n for s, n in n_pool.items() if s in needed})

    records = []
    for arm in arms:
        model, name, source, ratio = split_arm(arm)
        if source is not None and source not in pools:
            print(f"  {tag} {arm}: skipped (no {'boxes' if source != 'vae' else 'VAE'})", file=sys.stderr)
            continue
        if model == "detector" and source is not None and pools[source][2] is None:
            print(f"  {tag} {arm}: skipped (the {source} images have no boxes)", file=sys.stderr)
            continue
        n = 0 if source is None else int(round((ratio or args.synthetic_ratio) * k))
        if name == "cas":                                          # generated images only
            n = int(round((ratio or args.synthetic_ratio) * k))
            xa, ya, ba = (v[:n] for v in pools[source])
        elif source is None:
            xa, ya, ba = xs, ys, real_boxes
        else:
            extra = pools[source]
            xa, ya = np.concatenate([xs, extra[0][:n]]), np.concatenate([ys, extra[1][:n]])
            ba = real_boxes + (list(extra[2][:n]) if extra[2] is not None else [])
        classic = name.startswith("classic")
        t0 = time.monotonic()
        try:
            if model == "detector":
                det = train_det(args, xa, ba, seed, classic)
                s = {**coco_map(det.predict(x_test), boxes_test, x_test.shape[1]), "train_info": det.info}
                del det
            else:
                clf = train_classifier(xa, ya, steps=args.classifier_steps, seed=seed, batch_size=args.batch_size,
                                       augment=classic_augment if classic else None, width=args.width)
                s = score(clf, x_test, y_test)
                del clf
        except TrainingCollapsed as e:          # a row that says so, not a traceback, and not a score
            s = {"collapsed": True, "note": str(e), **{key: float("nan") for key in SCORES[model]},
                 **{key: {c: float("nan") for c in CLASSES} for key in PER_CLASS[model]}}
        rec = {"fraction": fraction, "seed": seed, "arm": arm, "model": model,
               "real_images": 0 if name == "cas" else int(k), "synthetic_images": int(len(xa) - (0 if name == "cas" else k)),
               "seconds": time.monotonic() - t0, **s, **timing}
        records.append(rec)
        said = ("COLLAPSED (recorded, not scored)" if s.get("collapsed") else
                f"mAP@0.5 {s['map50']:.3f}  mAP@0.5:0.95 {s['map']:.3f}" if model == "detector"
                else f"mean AUROC {s['mean_auroc']:.3f}  mAP {s['mAP']:.3f}")
        print(f"  {tag} {arm:18s} {said}  ({rec['seconds']:.0f} s)", file=sys.stderr, flush=True)
        keras.backend.clear_session()
    return records


def train_det(args, images, boxes, seed: int, augment: bool):
    """One detector of ``--detector`` for ``--detector-steps`` steps: an object with ``predict`` and ``info``."""
    if args.detector == "retinanet":
        from vae_keras.evaluation.retinanet import train_retinanet

        return train_retinanet(images, boxes, steps=args.detector_steps, seed=seed, augment=augment)
    from vae_keras.evaluation.detection import train_detector

    return train_detector(images, boxes, steps=args.detector_steps, seed=seed, augment=augment, width=args.width)


class _Row:
    """A train row with its boxes scaled to the loaded size."""

    def __init__(self, row, native: int, size: int):
        self.row, self.native = row, native
        self.boxes = row.boxes
        f = size / float(native)
        self.boxes_scaled = [{"label": b["label"], "box": [v * f for v in b["box"]]} for b in row.boxes]


def load_train_rows(data_dir: Path, size: int):
    from vae_keras.data.layouts import native_side

    rows = [r for r in read_manifest(data_dir / "manifest.csv") if r.split == "train"]
    return [_Row(r, native_side(data_dir, r), size) for r in rows]


# -- the report ------------------------------------------------------------------------------------
SCORES = {"classifier": ("mean_auroc", "mAP"), "detector": ("map50", "map")}
#: Scores the report derives from a record's per-class ones (:func:`with_well_tested`), not stored.
DERIVED = {"classifier": (), "detector": ("map50_well",)}
#: A class's AP50 counts in ``map50_well`` when the test split holds at least this many of its boxes.
#: Why: GDXray's test split (by bag series) holds 3 knives; one knife found or missed moves that
#: class's AP by about 0.3, the four-class mAP by 0.08, more than any arm's gain, so a mean over the
#: classes the test split can measure says what an arm does.
MIN_TEST_BOXES = 20
PER_CLASS = {"classifier": ("auroc", "ap"), "detector": ("ap50",)}
BASELINES = {"classifier": ("real", "classic"), "detector": ("det:real", "det:classic")}


def well_tested(test_boxes: dict) -> list:
    """The classes with at least :data:`MIN_TEST_BOXES` boxes in the test split (``{class: count}``)."""
    return [c for c in CLASSES if test_boxes.get(c, 0) >= MIN_TEST_BOXES]


def with_well_tested(records, classes) -> list:
    """The records, each detector record given ``map50_well``: its mean AP50 over ``classes`` (the
    :func:`well_tested` ones); unchanged when every class is well tested or none is."""
    if not classes or len(classes) == len(CLASSES):
        return list(records)
    return [dict(r, map50_well=float(np.mean([r["ap50"][c] for c in classes])))
            if r.get("model") == "detector" and "ap50" in r else r for r in records]


def summarize(records) -> list:
    """One dict per (fraction, arm): mean and std over seeds of every score, paired gains over the
    baselines (``real`` and ``classic``; ``det:real`` and ``det:classic`` for the detector), and for
    ``cas`` the ratio of its per-class AUROC to the ``real`` arm's."""
    out = []
    keys = sorted({(r["fraction"], r["arm"]) for r in records}, key=lambda t: (t[0], arm_order(t[1])))
    for fraction, arm in keys:
        every = [r for r in records if r["fraction"] == fraction and r["arm"] == arm]
        rs = [r for r in every if not r.get("collapsed")]               # collapsed runs have no score
        model = every[0].get("model", "classifier")
        d = {"fraction": fraction, "arm": arm, "model": model, "n": len(rs), "collapsed": len(every) - len(rs),
             "real_images": every[0]["real_images"], "synthetic_images": every[0]["synthetic_images"],
             "seconds": float(np.mean([r["seconds"] for r in every]))}
        for key in SCORES[model] + DERIVED[model]:
            if any(key not in r for r in rs):                           # a derived score not derived here
                continue
            v = np.array([r[key] for r in rs])
            d[key] = float(v.mean()) if len(v) else float("nan")
            d[key + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            for base_arm in BASELINES[model]:   # paired difference to a baseline arm of the same seed
                by_seed = {r["seed"]: r[key] for r in records if r["fraction"] == fraction and r["arm"] == base_arm
                           and not r.get("collapsed")}
                diff = np.array([r[key] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed])
                if len(diff):
                    tag = "" if base_arm.endswith("real") else "_vs_classic"
                    d[key + tag + "_gain"] = float(diff.mean())
                    d[key + tag + "_gain_std"] = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        for key in PER_CLASS[model]:
            d[key] = {c: float(np.nanmean([r[key][c] for r in rs])) if rs else float("nan") for c in CLASSES}
        out.append(d)
    real = {d["fraction"]: d for d in out if d["arm"] == "real"}
    for d in out:
        if d["arm"].split("@")[0] == "cas" and d["fraction"] in real:
            d["cas_ratio"] = {c: d["auroc"][c] / real[d["fraction"]]["auroc"][c] for c in CLASSES}
    return out


def _pm(d, key) -> str:
    return f"{d.get(key, float('nan')):+.3f} ± {d.get(key + '_std', 0):.3f}" if key in d else ""


#: How the report names each ``--detector``.
DETECTORS = {"centernet": "CenterNet from scratch", "retinanet": "KerasHub RetinaNet (narrow ResNet) from scratch"}


def _seeds(d) -> str:
    return f"{d['n']}" + (f" (+{d['collapsed']} collapsed)" if d.get("collapsed") else "")


def _score(d, key) -> str:
    return "collapsed" if d["n"] == 0 else f"{d[key]:.3f} ± {d[key + '_std']:.3f}"


def markdown_table(summary, detector: str = "centernet", well: Sequence[str] = ()) -> str:
    """The classifier's table, then the detector's (when it ran), then the CAS ratios (when ``cas`` ran);
    a run that collapsed (``TrainingCollapsed``) is counted beside the seeds and left out of the means."""
    head = ("| subset | seeds | arm | real + synthetic | mean AUROC | mAP | mAP gain vs real | vs classic | "
            + " | ".join(f"AP {c}" for c in CLASSES) + " |\n")
    head += "|" + " --- |" * (8 + len(CLASSES)) + "\n"
    lines = []
    if not any(d["model"] == "classifier" for d in summary):      # detector arms only: no empty table
        head = ""
    for d in (d for d in summary if d["model"] == "classifier"):
        lines.append(f"| {d['fraction']:.0%} | {_seeds(d)} | {d['arm']} | {d['real_images']} + {d['synthetic_images']} | "
                     f"{_score(d, 'mean_auroc')} | {_score(d, 'mAP')} | "
                     f"{'' if d['arm'] == 'real' else _pm(d, 'mAP_gain')} | "
                     f"{'' if d['arm'] in ('real', 'classic') else _pm(d, 'mAP_vs_classic_gain')} | "
                     + " | ".join(f"{d['ap'][c]:.2f}" for c in CLASSES) + " |")
    text = head + "\n".join(lines) + "\n" if lines else ""
    det = [d for d in summary if d["model"] == "detector"]
    if det:
        wells = all("map50_well" in d or d["n"] == 0 for d in det)
        name = f"mAP@0.5 of {', '.join(well)}" if well else ""
        text += ("\n" if text else "") + (f"Detector ({DETECTORS[detector]}, COCO box mAP from pycocotools):\n\n"
                 "| subset | seeds | arm | real + synthetic | mAP@0.5 | mAP@0.5:0.95 | mAP@0.5 gain vs det:classic | "
                 + (f"{name} | its gain vs det:classic | " if wells else "")
                 + " | ".join(f"AP50 {c}" for c in CLASSES) + " | s per run |\n"
                 + "|" + " --- |" * (8 + 2 * wells + len(CLASSES)) + "\n")
        text += "\n".join(
            f"| {d['fraction']:.0%} | {_seeds(d)} | {d['arm']} | {d['real_images']} + {d['synthetic_images']} | "
            f"{_score(d, 'map50')} | {_score(d, 'map')} | "
            f"{'' if d['arm'] in ('det:real', 'det:classic') else _pm(d, 'map50_vs_classic_gain')} | "
            + (f"{_score(d, 'map50_well')} | "
               f"{'' if d['arm'] in ('det:real', 'det:classic') else _pm(d, 'map50_well_vs_classic_gain')} | "
               if wells else "")
            + " | ".join(f"{d['ap50'][c]:.2f}" for c in CLASSES) + f" | {d['seconds']:.0f} |" for d in det) + "\n"
    cas = [d for d in summary if "cas_ratio" in d]
    if cas:
        text += ("\nClassification Accuracy Score (trained on whole generated bags only, per-class AUROC on the real "
                 "test split, as a fraction of the `real` arm's; the goal is 0.8):\n\n"
                 + "\n".join(f"- {d['fraction']:.0%} subset, `{d['arm']}`: " + ", ".join(
                     f"{c} {d['cas_ratio'][c]:.2f}" for c in CLASSES) for d in cas) + "\n")
    return text


def plot(summary, path: Path, records=(), detector: str = "centernet") -> Path:
    """Bars of the mean score per arm and subset (± the std over seeds, one dot per seed): the
    classifier's mAP and, when detector arms ran, the detector's mAP@0.5 in a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, key, label) for m, key, label in (
        ("classifier", "mAP", "Threat classifier: test mAP"),
        ("detector", "map50", f"Detector ({DETECTORS[detector]}): test mAP@0.5"))
        if any(d["model"] == m for d in summary)]
    names = sorted({d["arm"].removeprefix("det:") for d in summary}, key=arm_order)    # one colour per arm in both
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (model, key, title) in zip(axes[0], panels):
        rows = [d for d in summary if d["model"] == model]
        fractions = sorted({d["fraction"] for d in rows})
        arms = sorted({d["arm"] for d in rows}, key=arm_order)
        width = 0.8 / len(arms)
        for j, arm in enumerate(arms):
            for i, f in enumerate(fractions):
                d = next((d for d in rows if d["fraction"] == f and d["arm"] == arm), None)
                if d is None:
                    continue
                x = i + (j - (len(arms) - 1) / 2) * width
                ax.bar(x, np.nan_to_num(d[key]), width, yerr=d[key + "_std"], capsize=2,
                       color=colour[arm.removeprefix("det:")],
                       label=arm.removeprefix("det:") if i == 0 else None)
                seeds = [r[key] for r in records if r["fraction"] == f and r["arm"] == arm and not r.get("collapsed")]
                ax.plot([x + width / 4] * len(seeds), seeds, "o", ms=3, mfc="white", mec="black", mew=0.8)
        ax.set_xticks(range(len(fractions)), [f"{f:.0%} of train" for f in fractions])
        ax.set_ylabel(f"{title.split(': test ')[1]} (mean ± std; o: seeds)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncol=4, loc="upper left")
        ax.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


NOTES_MARKER = "<!-- notes: written by hand, kept when the report is regenerated -->"


#: For :func:`best_arms`: per model, the score it ranks by, its name, and the paired gain it quotes.
BEST = {"classifier": ("mAP", "mAP", "mAP_gain", "real"),
        "detector": ("map50", "detector mAP@0.5", "map50_vs_classic_gain", "det:classic")}


def best_arms(summary) -> str:
    """Per model that ran (classifier, detector), one sentence: for each subset size the arm with the
    highest mean score and its paired gain over the baseline (``real``; ``det:classic``). Empty if none ran."""
    sentences = []
    for model, (key, name, gain_key, base) in BEST.items():
        out = []
        for f in sorted({d["fraction"] for d in summary if d["model"] == model}):
            scored = [d for d in summary if d["fraction"] == f and d["model"] == model and np.isfinite(d[key])]
            if not scored:
                continue
            best = max(scored, key=lambda d: d[key])
            gain = f" ({best[gain_key]:+.3f} ± {best[gain_key + '_std']:.3f} over `{base}`)" \
                if gain_key in best and best["arm"] != base else ""
            out.append(f"{f:.0%} subset: `{best['arm']}`, {name} {best[key]:.3f}{gain}")
        if out:
            sentences.append(f"Best mean {name}: " + "; ".join(out) + ".\n")
    return "".join(sentences)


def caveats(records, meta) -> str:
    """Sentences the table needs: the sim arm is an oracle on phantom data, the gen arms partly one (their
    generator learnt from the phantom renderer first); each collapsed run, with its note."""
    out = ""
    if any(split_arm(r["arm"])[2] == "sim" for r in records):
        phantom = meta.get("phantom_data", False)
        out += ("\nThe `sim` arms insert the phantom renderer's threats (" + str(meta.get("sim_bags", "?"))
                + " phantom bags) into the subset's bags. " + ("**On this phantom data `sim` is an oracle**: its "
                "threats come from the renderer that drew the test threats, so its gain is an upper bound, not a "
                "result." if phantom else "On phantom data it would be an oracle (its threats come from the "
                "renderer that drew the test threats); here the test scans are real.") + "\n")
    if meta.get("phantom_data", False) and any(split_arm(r["arm"])[2] in NEEDS_GEN for r in records):
        out += ("\nThe `gen` arms' threat generator was pre-trained on the phantom renderer's threats before it "
                "was fine-tuned on the subset's: on this phantom data it has seen the test threats' renderer, so "
                "its gain is partly an oracle's.\n")
    for r in records:
        if r.get("collapsed"):
            out += (f"\nCollapsed: `{r['arm']}` at {r['fraction']:.0%}, seed {r['seed']} (left out of its row's "
                    f"mean): {r.get('note', '')}\n")
    return out


def _without(argv, *flags) -> list:
    """``argv`` less ``flags`` (a flag of ``--only`` takes its value with it): the command that makes the whole table."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=")[0] in flags:
            skip = a == "--only"
        else:
            out.append(a)
    return out


def _budget(meta, model: str) -> str:
    """``"120 epochs"`` (fixed work) or ``"10 min"`` (a time budget) for the ``vae`` or ``object`` model."""
    return f"{meta[model + '_epochs']} epochs" if meta.get(model + "_epochs") else f"{meta[model + '_minutes']} min"


def _generator_training(meta) -> str:
    """The report's clause on the gen arms' threat generator (empty when none ran): its epochs, both stages."""
    if "gen_epochs" not in meta:
        return ""
    pre, own = meta["gen_pretrain_epochs"], meta["gen_epochs"]
    return (f"; the threat generator (`threats`, gen arms) pre-trained {pre} + {GEN_PRIOR_PER_EPOCH * pre} epochs "
            f"(autoencoder + prior) on the threats of {meta.get('sim_bags', '?')} phantom bags, then fine-tuned "
            f"{own} + {GEN_PRIOR_PER_EPOCH * own} epochs on the subset's threats")


def _well_tested_note(meta) -> str:
    """Why the table has a second mAP@0.5 column (when a class has few test boxes)."""
    counts, well = meta.get("test_boxes", {}), meta.get("well_tested", [])
    few = [c for c in CLASSES if c not in well]
    if not well or not few:
        return ""
    return (f"The test split holds {', '.join(f'{counts.get(c, 0)} {c}' for c in CLASSES)} boxes: the AP50 of "
            f"{' and '.join(few)} (fewer than {MIN_TEST_BOXES}) moves by a large step with one box found or "
            f"missed, so the table also gives mAP@0.5 over {', '.join(well)}, and the gains on it.\n\n")


def write_report(records, meta, path: Path) -> Path:
    well = meta.get("well_tested", [])
    summary = summarize(with_well_tested(records, well))
    detector = meta.get("detector", "centernet")
    png = plot(summary, path.with_suffix(".png"), records, detector)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else NOTES_MARKER + "\n"
    classifiers = any(r.get("model", "classifier") == "classifier" for r in records)
    vaes = any(split_arm(r["arm"])[2] in NEEDS_VAE for r in records)
    text = (f"# Augmentation benchmark\n\nMade by:\n\n```bash\n{meta['command']}\n```\n\n"
            f"Data `{meta['data']}` ({meta['train_images']} train / {meta['test_images']} test images at "
            f"{meta['size']}x{meta['size']}); {meta['seeds']} seed(s); "
            + (f"every classifier {meta['classifier_steps']} Adam steps of batch {meta['batch_size']} "
               f"(width {meta['width']}); " if classifiers else "")
            + (f"each VAE `{meta['vae_config']}` trained {_budget(meta, 'vae')} on the subset only; " if vaes else "")
            + f"{meta['synthetic_ratio']:g} synthetic images per real one"
            + (f"; the object VAE (composite, ours, cas) trained {_budget(meta, 'object')} on the subset's threats"
               if "object_minutes" in meta else "")
            + _generator_training(meta)
            + ("; threats cut from their bags with the `alone` cut (the bag behind them divided out, "
               "vae_keras.sampling.tip.CUTS) for TIP and the generator's fine-tuning" if meta.get("cut") == "alone" else "")
            + (f"; every detector ({meta.get('detector', 'centernet')}) {meta['detector_steps']} Adam steps of batch 16"
               if "detector_steps" in meta else "")
            + ". Scores on the whole test split; "
            f"± is the standard deviation over seeds; the gains are paired differences to `real` and to "
            f"`classic` (same seed, same subset); `ours` inserts the object VAE's threats into the subset's own "
            f"bags (vae_keras.sampling.insert), `gen` the threat generator's, `gen+tip` half generated and half TIP "
            f"images, `ARM@R` is an arm at R synthetic images per real one. "
            f"Wall time {meta['minutes']:.0f} min on {meta['machine']}.\n\n"
            + _well_tested_note(meta) + markdown_table(summary, detector, well) + "\n" + best_arms(summary)
            + caveats(records, meta)
            + f"\n![mAP per arm]({png.name})\n\n" + notes)
    atomic_write_text(path, text)
    return path


# -- main ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from vae_keras.data.pipeline import load_split

    from vae_keras.data.layouts import boxes_at_size

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data is None:                                   # --quick without data: a few phantoms
        from data_prep.phantoms import write_phantom_dataset

        args.data = str(out / "quick_data")
        if not (out / "quick_data" / "manifest.csv").is_file():
            write_phantom_dataset(out / "quick_data", n=2 * args.limit, size=args.size, seed=0, progress=False,
                                  workers=1, benign_fraction=0.25)
    data = Path(args.data)
    start = time.monotonic()
    x, y = load_split(data, "train", image_size=args.size)                    # (n, S, S, 1) uint8
    x_test, y_test = load_split(data, "test", image_size=args.size)
    rows = load_train_rows(data, args.size)
    test_rows = [r for r in read_manifest(data / "manifest.csv") if r.split == "test"]   # load_split's order
    boxes_test = boxes_at_size(data, test_rows, args.size)
    if args.limit:
        x, y, rows = x[:args.limit], y[:args.limit], rows[:args.limit]
        x_test, y_test, boxes_test = x_test[:args.limit], y_test[:args.limit], boxes_test[:args.limit]
    results_path = out / "results.json"
    state = json.loads(results_path.read_text()) if results_path.is_file() else {"records": [], "minutes": 0.0}
    settings = {k: getattr(args, k) for k in ("data", "size", "synthetic_ratio", "vae_config", "vae_minutes",
                                              "classifier_steps", "batch_size", "width")}
    if {split_arm(a)[2] for a in args.arms} & NEEDS_OBJECTS:
        settings["object_minutes"] = args.object_minutes
    for key in ("vae_epochs", "object_epochs"):             # fixed work instead of minutes (recorded when used)
        if getattr(args, key):
            settings[key] = getattr(args, key)
    if any(a.startswith("det:") for a in args.arms):
        settings["detector_steps"] = args.detector_steps
        if args.detector != "centernet":                 # (results of v2, all CenterNet, say nothing)
            settings["detector"] = args.detector
    sources = {split_arm(a)[2] for a in args.arms}
    if sources & NEEDS_PHANTOMS:
        settings["sim_bags"] = args.sim_bags
    if sources & NEEDS_GEN:
        settings["gen_pretrain_epochs"], settings["gen_epochs"] = args.gen_pretrain_epochs, args.gen_epochs
    if args.limit:
        settings["limit"] = args.limit
    if args.cut != "box":
        settings["cut"] = args.cut
    if args.report_only and state.get("settings"):
        settings = state["settings"]                 # report what was run, whatever the flags say now
    elif state.get("settings") not in (None, settings):
        print(f"error: {results_path} was made with other settings {state['settings']}; use another --out",
              file=sys.stderr)
        return 2
    state["settings"] = settings
    print(f"{len(x)} train / {len(x_test)} test images; test positives per class "
          f"{dict(zip(CLASSES, y_test.sum(0).astype(int).tolist()))}", file=sys.stderr)
    for fraction in ([] if args.report_only else args.fractions):
        for seed in range(args.seeds):
            done = {r["arm"] for r in state["records"] if r["fraction"] == fraction and r["seed"] == seed}
            todo = [a for a in (args.only or args.arms) if a not in done]
            if not todo:
                continue
            print(f"fraction {fraction:g}, seed {seed}: {len(todo)} arms", file=sys.stderr, flush=True)
            recs = run_one(args, fraction, seed, (x, y, rows), (x_test, y_test, boxes_test), out, arms=todo)
            state["records"] = [r for r in state["records"] if not (r["fraction"] == fraction and r["seed"] == seed
                                                                    and r["arm"] in todo)]
            state["records"] += recs
            state["minutes"] = state.get("minutes", 0.0) + (time.monotonic() - start) / 60
            start = time.monotonic()
            atomic_write_text(results_path, json.dumps(state, indent=1))
    records = [r for r in state["records"] if r["fraction"] in args.fractions and r["arm"] in args.arms]
    test_boxes = {c: sum(b["label"] == c for bs in boxes_test for b in bs) for c in CLASSES}
    well = well_tested(test_boxes)
    print(markdown_table(summarize(with_well_tested(records, well)), settings.get("detector", "centernet"), well))
    if args.report:
        flags = _without(sys.argv[1:] if argv is None else argv, "--report-only", "--only")
        command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/augmentation.py", *flags])
        meta = {**settings, "command": command, "train_images": len(x), "test_images": len(x_test),
                "seeds": len({r["seed"] for r in records}),
                "minutes": state.get("minutes", 0.0), "machine": f"{os.cpu_count()} CPU cores",
                "phantom_data": bool(rows) and all(r.row.source.startswith("phantom") for r in rows),
                "test_boxes": test_boxes, "well_tested": well}
        print(f"wrote {write_report(records, meta, Path(args.report))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
