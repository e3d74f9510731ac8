"""Procedural X-ray baggage phantoms: the default data set, with exact threat labels and boxes.

Real baggage X-rays (GDXray, SIXray) cannot be redistributed, so every user first meets this
generator. It imitates the GDXray *baggage* group: a nearly white bag that fills the scan
(wrinkles, a seam, a zip along its edges, a handle, often the dark parallel rods of a trolley
frame) holding overlapping clutter (laptops with keyboards, boards and battery cells, other
devices, cables and chargers, bottles with liquid levels, shoes, folded clothes, springs, coins,
keys, notebooks) and, in most bags, one to three threats (handgun, knife, razor blade, shuriken)
at a random pose, sometimes under another object. Metal is nearly black.

Each object adds ``mu * thickness`` to a line-integral map (:mod:`data_prep.shapes`), and the
image follows from Beer-Lambert's law through a scanner model (focal-spot blur, photon noise per
cm^2, an intensity curve with a black level: :class:`~data_prep.xray_physics.Scanner`). Geometry
is in cm over a :data:`FOV_CM` field of view, so the same bag renders at 32, 64 or 224 pixels.

Two framing presets (:data:`PRESETS`): ``gdxray`` (the default) letterboxes a scan of aspect 1 to
1.33 that the bag fills, as ``prepare`` does with GDXray's scans; ``belt`` puts a smaller bag on a
conveyor belt (SIXray-like). Threat difficulty (size, pose, occlusion by clutter, clutter
density) is a :class:`Difficulty`. The default preset's pixel statistics are measured against
real GDXray scans by ``benchmarks/phantom_stats.py`` (``figures/phantom_stats.md``).

Image ``i`` of a set with seed ``K`` draws everything from ``SeedSequence([K, i])``: it is the
same whatever the batch size, the worker count or the order of rendering.

Example::

    image, labels, boxes = render_phantom(seed=0, index=7, size=224)
    # image: (224, 224) float32 in [0, 1]; labels: ["knife"]; boxes: [{"label": "knife", "box": [...]}]
    rows = write_phantom_dataset("data/phantoms", n=2000, size=64)
    hard = render_phantom(0, 7, 224, preset="belt", difficulty={"threat_size": 0.7, "occlusion": 0.8})
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from vae_keras.errors import ConfigError, DataError
from vae_keras.io.atomic import PathLike, sync_files
from vae_keras.io.images import png_bytes
from vae_keras.io.manifest import CLASSES, MANIFEST, ManifestRow, write_manifest
from vae_keras.io.progress import Progress
from data_prep.shapes import (Canvas, Layer, blob_pts, circle_pts, ellipse_pts, extent, rect_pts, rotate,
                              rounded_rect_pts, smooth_curve, smooth_noise, star_pts, zigzag)
from data_prep.xray_physics import MATERIALS, Scanner

#: Side of the square field of view, cm (a cabin bag is about 55 x 40 cm).
FOV_CM = 60.0

MU = MATERIALS  # short alias: MU["steel"] * 0.2 is 2 mm of steel


# =================================================================================================
# What one image contains
# =================================================================================================
@dataclass
class Placement:
    """Pose of one object: centre (cm, image frame), rotation (rad), size factor, mirror image."""

    kind: str
    center: Tuple[float, float]
    angle: float = 0.0
    scale: float = 1.0
    mirror: bool = False


@dataclass
class BagSpec:
    """The bag: a rounded rectangle of half-sides ``half_size`` (cm) turned by ``angle``."""

    center: Tuple[float, float]
    half_size: Tuple[float, float]
    angle: float
    trolley: bool

    def point(self, u: float, v: float) -> Tuple[float, float]:
        """Image-frame cm of the bag-frame point ``(u, v)``."""
        p = rotate([[u, v]], self.angle)[0] + self.center
        return float(p[0]), float(p[1])

    def random_point(self, rng: np.random.Generator, inset: float) -> Tuple[float, float]:
        a, b = self.half_size
        return self.point(rng.uniform(-1, 1) * max(a - inset, 0.5), rng.uniform(-1, 1) * max(b - inset, 0.5))


@dataclass(frozen=True)
class Preset:
    """How a scanner frames a bag: the scan's shape, how much of it the bag fills, the belt.

    Attributes:
        name: the preset's name (a key of :data:`PRESETS`).
        aspects: scan width / height ratios, one drawn per image; the scan is letterboxed into
            the square image with white (1.0) padding, as ``prepare`` does with real scans.
        portrait: probability that the scan is turned upright (padding left and right).
        bag_fill: range of the bag's extent over the scan's (about 1: the bag touches the edges).
        belt: a conveyor belt under the bag (open field around it), as in SIXray-style scanners.
        scanner: the scanner model (:class:`~data_prep.xray_physics.Scanner`).
    """

    name: str
    aspects: Tuple[float, ...]
    portrait: float
    bag_fill: Tuple[float, float]
    belt: bool
    scanner: Scanner = Scanner()


#: Framing presets. ``gdxray`` (the default) imitates GDXray's baggage series: a laboratory
#: scanner, the bag filling most of the frame, scans of aspect 1 to 1.33 padded to a square.
#: ``belt`` imitates a checkpoint scanner (SIXray): a smaller bag on a conveyor belt, a wide scan.
PRESETS: Dict[str, Preset] = {
    "gdxray": Preset("gdxray", aspects=(1.0, 1.22, 1.25, 1.33), portrait=0.15, bag_fill=(0.9, 1.08), belt=False),
    "belt": Preset("belt", aspects=(1.47,), portrait=0.0, bag_fill=(0.5, 0.72), belt=True,
                   scanner=Scanner(flux=1.0e5, focal_spot_cm=0.08, black_level=0.03)),
}
DEFAULT_PRESET = "gdxray"


@dataclass(frozen=True)
class Difficulty:
    """How hard the threats are to see: a benchmark can say on what it was measured.

    Attributes:
        threat_size: multiplies every threat's size (0.7: small threats, 1.3: large).
        pose: threats turn by up to this many degrees either way from their drawn pose
            (180: any rotation; 0: all upright, side view).
        occlusion: probability that a clutter object (electronics, a bottle, a book, shoes, a
            garment) is laid over each threat, on top of the clutter that overlaps by chance.
        clutter: clutter density, multiplies the number of benign objects in the bag.
    """

    threat_size: float = 1.0
    pose: float = 180.0
    occlusion: float = 0.3
    clutter: float = 1.0

    def __post_init__(self):
        if not 0.2 <= self.threat_size <= 3.0:
            raise ConfigError(f"threat_size must be in [0.2, 3], got {self.threat_size}")
        if not 0.0 <= self.pose <= 180.0:
            raise ConfigError(f"pose must be in [0, 180] degrees, got {self.pose}")
        if not 0.0 <= self.occlusion <= 1.0:
            raise ConfigError(f"occlusion must be in [0, 1], got {self.occlusion}")
        if not 0.0 <= self.clutter <= 4.0:
            raise ConfigError(f"clutter must be in [0, 4], got {self.clutter}")


def as_difficulty(difficulty) -> Difficulty:
    """``None`` (defaults), a :class:`Difficulty` or a dict of its fields -> a :class:`Difficulty`."""
    if difficulty is None:
        return Difficulty()
    if isinstance(difficulty, Difficulty):
        return difficulty
    if isinstance(difficulty, dict):
        unknown = set(difficulty) - set(Difficulty.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown difficulty parameters {sorted(unknown)}; known: "
                             f"{sorted(Difficulty.__dataclass_fields__)}")
        return Difficulty(**difficulty)
    raise ConfigError(f"difficulty must be None, a Difficulty or a dict, got {type(difficulty).__name__}")


def get_preset(preset) -> Preset:
    """A :class:`Preset` or the name of one in :data:`PRESETS`."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[str(preset)]
    except KeyError:
        raise ConfigError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}") from None


@dataclass
class PhantomSpec:
    """The content of one phantom image (everything but the fine random detail of each object).

    Attributes:
        seed, index: where the image comes from (``SeedSequence([seed, index])``).
        size: output side in pixels.
        benign: True when the bag carries no threat.
        bag: the bag's placement and type.
        clutter: benign objects (kinds from :data:`CLUTTER`).
        threats: threat objects (kinds from :data:`~vae_keras.io.manifest.CLASSES`).
        scan: the scanned part of the field of view, ``(x0, y0, x1, y1)`` in cm; the image
            outside it is white padding.
        preset: the framing preset.
    """

    seed: int
    index: int
    size: int
    benign: bool
    bag: BagSpec
    clutter: List[Placement] = field(default_factory=list)
    threats: List[Placement] = field(default_factory=list)
    scan: Tuple[float, float, float, float] = (0.0, 0.0, FOV_CM, FOV_CM)
    preset: Preset = PRESETS[DEFAULT_PRESET]


# =================================================================================================
# The bag
# =================================================================================================
def draw_bag(canvas: Canvas, rng: np.random.Generator, bag: BagSpec) -> None:
    """Shell, rim, seams, wrinkles, zip, carry handle and, for trolleys, the frame rods and wheels."""
    a, b = bag.half_size
    lay = canvas.layer(bag.center, (-a - 1.5, -b - 4.5, a + 1.5, b + 4.5), bag.angle)
    if lay.empty:
        return
    outline = rounded_rect_pts(a, b, rng.uniform(2.0, 5.0), n_corner=8)
    outline += 0.4 * smooth_noise(rng, 1, len(outline), (1, 6))[0][:, None] * np.sign(outline)
    base = rng.uniform(0.008, 0.03)  # two nylon walls and the lining: thin, nearly white
    # painted values overwrite each other here, so each part carries the shell's base value
    lay.polygon(outline * (1.0 + 0.7 / np.array([a, b])), base + rng.uniform(0.08, 0.2))  # side walls seen edge-on
    lay.polygon(outline, base)
    creases = smooth_curve(rng, 0.4 * b, n=8, count=rng.integers(3, 8))  # short: they stay inside
    lay.lines(creases + rng.uniform(-0.55, 0.55, (len(creases), 1, 2)) * (a, b), 0.4, base + 0.05)
    lay.line(rounded_rect_pts(a - 1.3, b - 1.3, 3.0), 0.12, base + 0.2, closed=True)  # seam
    # carry handle on a long side, sticking out of the outline (strap, 1.5 cm wide)
    side = rng.choice([-1.0, 1.0])
    hu = rng.uniform(-a * 0.3, a * 0.3)
    t = np.linspace(0, np.pi, 12)
    handle = np.stack([hu + 5.5 * np.cos(t), side * (b - 0.5 + 3.0 * np.sin(t))], axis=1)
    lay.line(handle, 1.5, MU["plastic"] * 1.2, closed=False)
    # wrinkles: a smooth texture over the whole bag (thicker folds, thinner stretched fabric);
    # from here on paint adds to the shell
    lay.replace(lay.values() * (1.0 + 0.18 * smooth_noise(rng, lay.h, lay.w, (6, 6))))
    # zip around one to three sides of the lid: a zigzag of small metal teeth and a slider
    zi = rng.uniform(2.0, 3.0)
    loop = rounded_rect_pts(a - zi, b - zi, 2.0, n_corner=4)
    start = rng.integers(0, len(loop))
    path = np.roll(loop, -start, axis=0)[: int(len(loop) * rng.uniform(0.3, 0.75))]
    lay.line(path, 1.0, MU["nylon"] * 0.3)  # zip tape
    lay.line(zigzag(path, 0.7, 0.25), 0.08, MU["steel"] * 0.2)
    slider = path[rng.integers(0, len(path))]
    lay.polygon(rect_pts(-0.8, -0.6, 0.8, 0.6) + slider, MU["steel"] * 0.15)
    lay.polygon(rect_pts(-0.3, 0.5, 0.3, 2.0) + slider, MU["steel"] * 0.1)
    if bag.trolley:
        draw_trolley_frame(lay, rng, a, b)
    lay.commit(clip=False)
    # everything else is inside the bag
    canvas.set_clip(rotate(rounded_rect_pts(a - 0.5, b - 0.5, 3.0), bag.angle) + bag.center)


def draw_conveyor(canvas: Canvas, rng: np.random.Generator, scan) -> None:
    """The conveyor belt of a checkpoint scanner: a faint rubber band across the scan with the
    denser edges of its slats, under the bag."""
    x0, y0, x1, y1 = scan
    lay = canvas.layer(((x0 + x1) / 2, (y0 + y1) / 2), (-(x1 - x0) / 2, -(y1 - y0) / 2, (x1 - x0) / 2, (y1 - y0) / 2))
    if lay.empty:
        return
    hu, hv = (x1 - x0) / 2, (y1 - y0) / 2 * rng.uniform(0.75, 0.9)
    lay.polygon(rect_pts(-hu, -hv, hu, hv), MU["rubber"] * rng.uniform(0.1, 0.2))
    lay.flush()
    pitch = rng.uniform(3.0, 6.0)
    slats = np.array([[[u, -hv], [u, hv]] for u in np.arange(-hu + rng.uniform(0, pitch), hu, pitch)])
    lay.lines(slats, 0.15, MU["rubber"] * 0.6)
    lay.commit(clip=False)


def draw_trolley_frame(lay: Layer, rng: np.random.Generator, a: float, b: float) -> None:
    """Two hollow metal tubes along the bag (dark parallel lines: a tube is darkest at its
    edges, where the ray runs along the wall), the handle grip joining them, and two wheels."""
    d = rng.uniform(0.35, 0.6) * b
    radius = rng.uniform(0.6, 0.9)
    steel = rng.random() < 0.15
    wall = rng.uniform(0.03, 0.05) if steel else rng.uniform(0.1, 0.18)
    m = MU["steel"] if steel else MU["aluminium"]
    end = rng.choice([-1.0, 1.0])  # handle end
    u0, u1 = -a + 2.0, a - 1.0
    inner = rng.uniform(0.3, 0.6) * (u1 - u0)  # telescoping: the inner tube doubles the walls
    for v in (-d, d):
        outer_tube = (radius, 0.0, (u0, u1))
        inner_tube = (0.8 * radius, m * 2 * wall, (end * (a - 1.0), end * (a - 1.0 - inner)))
        for r, value, (s0, s1) in (outer_tube, inner_tube):
            edge = 2.0 * math.sqrt(2.0 * r * wall)  # chord through the wall at the tube's edge
            lay.line([(s0, v), (s1, v)], 2 * r, value + m * 2 * wall)  # both walls, across the tube
            for s in (-1, 1):
                lay.line([(s0, v + s * (r - wall)), (s1, v + s * (r - wall))], 2 * wall, value + m * edge)
    grip_u = end * (a - 1.5)
    lay.polygon(rect_pts(grip_u - 1.5, -d - 1.5, grip_u + 1.5, d + 1.5), MU["plastic"] * 3.0)
    for v in (-b + 3.0, b - 3.0):  # wheels at the other end: tyre, hub, steel axle
        c = np.array([-end * (a - 3.0), v])
        r = rng.uniform(2.0, 3.0)
        lay.circle(c, r, MU["rubber"] * 3.5)
        lay.circle(c, 0.5 * r, MU["plastic"] * 3.0)
        lay.circle(c, 0.25, MU["steel"] * 3.0)


# =================================================================================================
# Clutter
# =================================================================================================
def draw_clothes(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A folded garment: a large low-attenuation blob, one layer thicker beyond each fold line,
    with a woven texture, seams and sometimes a metal zip or buttons."""
    r = 9.0 * p.scale
    outline = blob_pts(rng, r, 0.5, aspect=rng.uniform(0.6, 1.4))
    lay = canvas.layer(p.center, extent(outline, 0.5), p.angle)
    if lay.empty:
        return
    lay.polygon(outline, 1.0)
    mask = lay.values()  # (h, w): 1 inside the garment
    xs = np.arange(lay.w, dtype=np.float32)[None, :] - lay.w / 2  # (1, w) window pixels
    ys = np.arange(lay.h, dtype=np.float32)[:, None] - lay.h / 2  # (h, 1)
    layers = np.ones_like(mask)
    for _ in range(rng.integers(2, 5)):  # folds: the far side of a line carries one more layer
        th = rng.uniform(0, 2 * np.pi)
        layers += (xs * math.cos(th) + ys * math.sin(th)) > rng.uniform(-0.5, 0.5) * r * lay.k
    texture = 1.0 + 0.2 * smooth_noise(rng, lay.h, lay.w, (4, 4), fine=0.5)
    t = rng.uniform(0.25, 0.6)  # cm of compressed cloth per layer
    lay.replace(mask * layers * texture * (MU["cloth"] * t))
    seams = smooth_curve(rng, r * rng.uniform(0.5, 1.0), n=8, wiggle=0.3, count=rng.integers(1, 4))
    lay.lines(seams + rng.uniform(-0.4, 0.4, (len(seams), 1, 2)) * r, 0.15, MU["cloth"] * t * 2.0)
    if rng.random() < 0.35:  # jeans: a short metal zip and a button
        q = np.array([[0, 0], [0, rng.uniform(6, 12)]]) + rng.uniform(-0.4, 0.4, 2) * r
        lay.line(q, 0.35, MU["steel"] * 0.12)
        lay.circle(q[0] + (1.5, -1.0), 0.8, MU["brass"] * 0.2)
    elif rng.random() < 0.4:  # shirt: a row of plastic buttons
        q0, step = rng.uniform(-0.4, 0.4, 2) * r, rng.uniform(2.5, 4.0)
        for k in range(rng.integers(3, 7)):
            lay.circle(q0 + (0, k * step), 0.6, MU["plastic"] * 0.5)
    lay.commit()


def draw_cable(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A cable as a random smooth curve: plastic insulation around dark copper cores, with a
    plug at one end and sometimes a charger brick at the other."""
    pts = smooth_curve(rng, rng.uniform(15, 45) * p.scale, n=36, wiggle=rng.uniform(3, 8))
    pts -= pts.mean(axis=0)
    lay = canvas.layer(p.center, extent(pts, 6.5))
    if lay.empty:
        return
    w = rng.uniform(0.3, 0.7)
    lay.line(pts, w, MU["plastic"] * w)
    lay.flush()
    for off in ((0.0,) if rng.random() < 0.5 else (-0.12, 0.12)):
        lay.line(pts + off, 0.12, MU["copper"] * 0.12)
    lay.flush()
    for first, end, nxt in ((False, pts[-1], pts[-2]), (True, pts[0], pts[1])):
        ang = math.atan2(*(end - nxt)[::-1])
        if first and rng.random() < 0.5:  # charger brick with a transformer core
            brick = rotate(rect_pts(0, -2.0, 6.0, 2.0), -ang) + end
            lay.polygon(brick, MU["plastic"] * 3.0)
            lay.polygon(rotate(rect_pts(1.5, -1.0, 3.5, 1.0), -ang) + end, MU["ferrite"] * 1.2)
            lay.polygon(rotate(rect_pts(4.0, -1.5, 5.5, 1.5), -ang) + end, MU["fr4"] * 0.2 + MU["plastic"] * 3)
        else:  # plug: plastic body and two metal pins
            lay.polygon(rotate(rect_pts(0, -0.7, 2.5, 0.7), -ang) + end, MU["plastic"] * 1.4)
            for s in (-0.3, 0.3):
                lay.polygon(rotate(rect_pts(2.5, s - 0.1, 4.0, s + 0.1), -ang) + end, MU["brass"] * 0.2)
    lay.commit()


def draw_electronics(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A device: plastic case around a circuit board with copper traces, chips with pin rows,
    dense components (capacitors, ferrite cores, connectors, screws) and often a battery."""
    hu, hv = rng.uniform(4, 10) * p.scale, rng.uniform(3, 7) * p.scale
    lay = canvas.layer(p.center, (-hu - 1.5, -hv - 1.5, hu + 1.5, hv + 1.5), p.angle)
    if lay.empty:
        return
    case_mu = MU["plastic"] * 0.5 if rng.random() < 0.7 else 0.0  # top and bottom walls
    if case_mu:
        case = rounded_rect_pts(hu + 0.8, hv + 0.8, 1.0)
        lay.polygon(case, case_mu)
        lay.line(case, 0.3, MU["plastic"] * 2.5, closed=True)  # side walls edge-on
    # painted values overwrite, so the board carries the case under it; then flush: traces and
    # components add on top
    lay.polygon(rect_pts(-hu, -hv, hu, hv), case_mu + MU["fr4"] * 0.16 + 0.05)  # board + copper planes
    lay.flush()
    n_traces = int(hu * hv * rng.uniform(0.3, 0.8))  # traces: Manhattan polylines, 4 segments
    start = rng.uniform(-1, 1, (n_traces, 1, 2)) * (hu, hv)
    steps = rng.uniform(-3, 3, (n_traces, 4, 1)) * np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    traces = np.clip(np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1), (-hu, -hv), (hu, hv))
    lay.lines(traces, 0.06, MU["copper"] * 0.04)  # (partial-volume value: drawn 1 px wide)
    lay.flush()
    if rng.random() < 0.8:  # battery pack
        bu, bv = hu * rng.uniform(0.3, 0.5), hv * rng.uniform(0.5, 0.9)
        c = np.array([rng.choice([-1, 1]) * (hu - bu), 0.0])
        lay.polygon(rect_pts(-bu, -bv, bu, bv) + c, MU["lithium_cell"] * 1.2)
        lay.line(rect_pts(-bu, -bv, bu, bv) + c, 0.15, MU["steel"] * 0.1, closed=True)
    for _ in range(rng.integers(2, 7)):  # chips: package, then a pin row on each long side
        cu, cv = rng.uniform(0.4, 1.6), rng.uniform(0.4, 1.2)
        c = np.array([rng.uniform(-hu + cu, hu - cu), rng.uniform(-hv + cv, hv - cv)])
        lay.polygon(rect_pts(-cu, -cv, cu, cv) + c, MU["silicon"] * 0.3 + MU["plastic"] * 0.3)
        lay.lines(np.array([[[-cu, -cv], [cu, -cv]], [[-cu, cv], [cu, cv]]]) + c, 0.2, MU["copper"] * 0.06)
    for _ in range(rng.integers(4, 14)):  # dense components
        c = np.array([rng.uniform(-hu, hu), rng.uniform(-hv, hv)])
        kind = rng.integers(0, 3)
        if kind == 0:  # electrolytic capacitor: aluminium can seen end-on
            lay.circle(c, rng.uniform(0.25, 0.6), MU["aluminium"] * 1.0 + MU["aluminium"] * 0.2)
        elif kind == 1:  # ferrite inductor / transformer
            s = rng.uniform(0.3, 0.8)
            lay.polygon(rect_pts(-s, -s, s, s) + c, MU["ferrite"] * 0.5)
        else:  # connector: a steel shell at the board edge
            c[0] = rng.choice([-1, 1]) * (hu - 0.6)
            lay.polygon(rect_pts(-0.6, -0.9, 0.6, 0.9) + c, MU["steel"] * 0.12)
    for su in (-1, 1):  # mounting screws at the corners
        for sv in (-1, 1):
            lay.circle(np.array([su * (hu - 0.4), sv * (hv - 0.4)]), 0.2, MU["steel"] * 0.6)
    lay.commit()


def draw_laptop(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A laptop: the densest thing in most bags. Aluminium or plastic shell, the keyboard's grid of
    keys (each a plastic cap over a steel plate with a hole), the main board with chips and a
    copper heat pipe, a row of battery cells, hinges and screws; often a second screen panel."""
    hu, hv = rng.uniform(13.0, 17.0) * p.scale, rng.uniform(9.0, 11.5) * p.scale
    lay = canvas.layer(p.center, (-hu - 0.5, -hv - 0.5, hu + 0.5, hv + 0.5), p.angle)
    if lay.empty:
        return
    shell = MU["aluminium"] * rng.uniform(0.25, 0.4) if rng.random() < 0.6 else MU["plastic"] * 1.0
    lay.polygon(rounded_rect_pts(hu, hv, 1.0), shell + MU["glass"] * 0.15)  # shells + screen glass
    lay.line(rounded_rect_pts(hu, hv, 1.0), 0.3, MU["aluminium"] * 1.5, closed=True)  # walls edge-on
    lay.flush()
    # keyboard: a grid of keys on the near half; each key darker at its steel plate, the gaps light
    ku0, kv0 = -hu + 1.5, -hv + 1.0
    row = 0.9 * hv / 5  # five rows of keys over 45% of the depth
    kv1 = kv0 + 5 * row
    pitch = rng.uniform(0.95, 1.05) * row
    cols = int((2 * hu - 3.0) / pitch)
    keys = np.array([[ku0 + (c + 0.5 * (r % 2) * 0.5) * pitch, kv0 + r * row]
                     for r in range(5) for c in range(cols - (r % 2))])
    plate = MU["steel"] * rng.uniform(0.08, 0.12)
    lay.polygons(rect_pts(0.1, 0.1, pitch - 0.2, row - 0.2)[None] + keys[:, None], plate)  # (keys, 4, 2)
    lay.polygon(rect_pts(-3.5, 0.0, 3.5, 4.5) + (0.0, kv1 + 0.5), MU["glass"] * 0.1)  # touchpad
    lay.flush()
    # main board along the far side: board, chips, heat pipe, fan ring
    bv0 = kv1 + 0.3
    lay.polygon(rect_pts(-hu + 1.0, bv0, hu - 1.0, hv - 1.0), MU["fr4"] * 0.15 + MU["copper"] * 0.01)
    lay.flush()
    n_traces = int(hu * (hv - bv0) * 0.3)
    start = np.stack([rng.uniform(-hu + 1, hu - 1, n_traces), rng.uniform(bv0, hv - 1, n_traces)], axis=1)[:, None]
    steps = rng.uniform(-2, 2, (n_traces, 3, 1)) * np.array([[1, 0], [0, 1], [1, 0]])
    traces = np.clip(np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1), (-hu + 1, bv0), (hu - 1, hv - 1))
    lay.lines(traces, 0.05, MU["copper"] * 0.05)
    for _ in range(rng.integers(4, 10)):
        cu, cv = rng.uniform(0.5, 1.8), min(rng.uniform(0.5, 1.5), (hv - 1 - bv0) / 2 - 0.05)
        c = np.array([rng.uniform(-hu + 2, hu - 2), rng.uniform(bv0 + cv, hv - 1 - cv)])
        lay.polygon(rect_pts(-cu, -cv, cu, cv) + c, MU["silicon"] * 0.3 + MU["copper"] * 0.05)
    fan = np.array([rng.uniform(-hu + 4, hu - 4), (bv0 + hv) / 2])
    lay.line(circle_pts(2.5, lay.k) + fan, 0.3, MU["aluminium"] * 0.8, closed=True)
    lay.circle(fan, 0.8, MU["steel"] * 0.3)
    lay.line(np.array([fan, fan + (rng.choice([-1, 1]) * rng.uniform(5, 9), rng.uniform(-1, 1))]), 0.6, MU["copper"] * 0.3)
    lay.flush()
    # battery: a row of cells under the palm rest
    n_cells = int(rng.integers(3, 7))
    cw = (2 * hu - 4.0) / n_cells
    cells = [rect_pts(u + 0.1, -hv + 0.8, u + cw - 0.1, -hv + 0.8 + depth)
             for u, depth in zip(-hu + 2.0 + np.arange(n_cells) * cw, rng.uniform(4.0, 6.0, n_cells))]
    lay.polygons(cells, MU["lithium_cell"] * 1.2 + MU["steel"] * 0.05)
    for s_ in (-1, 1):  # hinges and screws
        lay.polygon(rect_pts(s_ * hu * 0.6 - 1.0, hv - 1.2, s_ * hu * 0.6 + 1.0, hv - 0.2), MU["steel"] * 0.5)
    for q in rounded_rect_pts(hu - 0.6, hv - 0.6, 0.1, n_corner=1):
        lay.circle(q, 0.25, MU["steel"] * 0.4)
    lay.commit()


def draw_springs(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A few steel coil springs and wire clips (in staplers, pens, toys, a belt's retractor): a
    helix seen from the side is a tight zigzag of dark wire between two lines."""
    lay = canvas.layer(p.center, 7.0, p.angle)
    if lay.empty:
        return
    for _ in range(rng.integers(1, 4)):
        length, radius = rng.uniform(2.0, 6.0), rng.uniform(0.2, 0.6)
        c = rng.uniform(-3.5, 3.5, 2)
        th = rng.uniform(0, np.pi)
        path = np.array([[0.0, 0.0], [length, 0.0]])
        coil = zigzag(path, rng.uniform(0.2, 0.4), radius)
        lay.line(rotate(coil, th) + c, 0.06, MU["steel"] * 0.12)
        lay.flush()
    if rng.random() < 0.5:  # a binder clip or a buckle: a dense wire loop
        loop = rounded_rect_pts(rng.uniform(1.0, 2.0), rng.uniform(0.6, 1.2), 0.3)
        lay.line(loop + rng.uniform(-3, 3, 2), 0.15, MU["steel"] * 0.3, closed=True)
    lay.commit()


def draw_bottle(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A bottle: a rounded capsule of liquid (thickest on its axis) inside a plastic or glass wall,
    a neck and a cap. Half of them stand in the bag as the beam sees it from the side: the liquid
    ends at a sharp level line, air above it."""
    half_len = rng.uniform(4.0, 9.0) * p.scale
    radius = rng.uniform(2.5, 4.0) * p.scale
    neck_r, neck_len = radius * rng.uniform(0.3, 0.45), rng.uniform(2.0, 4.0)
    glass = rng.random() < 0.3
    wall = rng.uniform(0.25, 0.4) if glass else 0.05
    fill = rng.uniform(0.4, 0.9)  # liquid level (lying down: a thinner layer everywhere)
    level = rng.uniform(-0.6, 0.9) * half_len if rng.random() < 0.5 else None  # standing: level on the axis
    box = (-half_len - radius - 0.5, -radius - 0.5, half_len + 0.6 * radius + neck_len + 2.0, radius + 0.5)
    lay = canvas.layer(p.center, box, p.angle)
    if lay.empty:
        return
    u, v = lay.grid()
    v2 = v * v

    def chord(r, d2):  # length of the ray through a sphere/cylinder of radius r at distance^2 d2
        return 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))

    d2_body = v2 + np.maximum(np.abs(u) - half_len, 0.0) ** 2
    nu = half_len + radius * 0.6
    d2_neck = v2 + np.maximum(np.maximum(nu - u, u - (nu + neck_len)), 0.0) ** 2
    outer = np.maximum(chord(radius, d2_body), chord(neck_r, d2_neck))
    inner = np.maximum(chord(radius - wall, d2_body), chord(neck_r - wall, d2_neck))
    wall_mu = MU["glass"] if glass else MU["plastic"]
    if level is None:
        liquid = MU["water"] * fill * inner
    else:
        liquid = MU["water"] * inner * (u > level)  # (the cap end is up)
    lay.add(wall_mu * (outer - inner) + liquid)
    cap_u = nu + neck_len
    lay.polygon(rect_pts(cap_u - 0.3, -neck_r - 0.25, cap_u + 1.5, neck_r + 0.25), MU["plastic"] * 1.8)
    lay.commit()


def draw_coins(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A wallet: leather, a couple of plastic cards and a handful of dense coins (overlapping
    coins add up: darker where they stack)."""
    lay = canvas.layer(p.center, 8.0, p.angle)
    if lay.empty:
        return
    if rng.random() < 0.6:
        lay.polygon(rounded_rect_pts(5.5, 4.5, 0.8), MU["leather"] * 0.8)
        card = rect_pts(-4.3, -2.7, 4.3, 2.7) + rng.uniform(-0.5, 0.5, 2)
        lay.polygon(card, MU["leather"] * 0.8 + MU["plastic"] * 0.2)
        lay.flush()
    for _ in range(rng.integers(2, 9)):
        c = rng.normal(0, 1.8, 2)
        r = rng.uniform(0.8, 1.3)
        m = MU[rng.choice(["brass", "steel", "copper"])] * rng.uniform(0.15, 0.22)
        lay.circle(c, r, m * 1.1)  # raised rim
        lay.circle(c, r - 0.12, m)
        lay.flush()
    lay.commit()


def draw_keys(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A key ring with one to four brass keys fanned around it (head with hole, bitted blade)."""
    lay = canvas.layer(p.center, 9.0, p.angle)
    if lay.empty:
        return
    ring_r = rng.uniform(1.0, 1.6)
    lay.line(circle_pts(ring_r, lay.k), 0.15, MU["steel"] * 0.15, closed=True)
    lay.flush()
    for phi in rng.uniform(0, 2 * np.pi, rng.integers(1, 5)):
        head_r = rng.uniform(1.0, 1.4)
        blade_len, bw = rng.uniform(3.0, 4.5), rng.uniform(0.35, 0.45)
        u0 = ring_r - 0.3  # the ring passes through the hole in the head
        teeth = np.arange(0.0, blade_len, 0.4)
        bit = np.stack([u0 + 2 * head_r + teeth, -bw - 0.25 * (np.arange(len(teeth)) % 2)
                        * rng.uniform(0.5, 1.0, len(teeth))], axis=1)
        key = np.vstack([[[u0 + 2 * head_r - 0.1, bw]], [[u0 + 2 * head_r + blade_len, bw]],
                         [[u0 + 2 * head_r + blade_len + 0.3, 0.0]], bit[::-1]])
        m = MU["brass"] * rng.uniform(0.18, 0.24)
        lay.polygon(rotate(key, -phi), m)
        head = circle_pts(head_r, lay.k) + (u0 + head_r, 0.0)
        plastic_head = rng.random() < 0.3
        lay.polygon(rotate(head, -phi), MU["plastic"] * 1.0 if plastic_head else m)
        if plastic_head:
            lay.polygon(rotate(circle_pts(head_r * 0.6, lay.k) + (u0 + head_r, 0.0), -phi), m * 0.7)
        lay.polygon(rotate(circle_pts(0.25, lay.k) + (u0 + 0.4, 0.0), -phi), 0.0)
        lay.flush()
    lay.commit()


def draw_binder(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A spiral notebook: a stack of paper and a steel wire coil along one edge (a row of small
    loops: the projection of a helix)."""
    hu, hv = rng.uniform(5.0, 7.5) * p.scale, rng.uniform(7.0, 10.5) * p.scale
    lay = canvas.layer(p.center, (-hu - 1.0, -hv - 1.0, hu + 1.0, hv + 1.0), p.angle)
    if lay.empty:
        return
    paper = MU["paper"] * rng.uniform(0.8, 1.6)
    lay.polygon(rect_pts(-hu, -hv, hu, hv), paper)
    lay.line(rect_pts(-hu, -hv, hu, hv), 0.2, MU["paper"] * 3.0, closed=True)  # card covers
    pitch = rng.uniform(0.6, 0.9)
    for vk in np.arange(-hv + 0.6, hv - 0.3, pitch):  # punched holes
        lay.polygon(rect_pts(-hu + 0.4, vk - 0.1, -hu + 0.8, vk + 0.1), 0.0)
    lay.flush()
    t = np.linspace(0, 2 * np.pi * (2 * hv - 1.0) / pitch, int(24 * (2 * hv) / pitch))
    coil = np.stack([-hu + 0.55 + 0.55 * np.cos(t), -hv + 0.5 + pitch * t / (2 * np.pi) + 0.2 * np.sin(t)], axis=1)
    lay.line(coil, 0.1, MU["steel"] * 0.1)
    lay.commit()


def draw_shoes(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A pair of shoes: rubber soles (thicker heel), a steel shank under the arch and a row of
    metal eyelets."""
    length, width = rng.uniform(24, 30) * p.scale, rng.uniform(8, 10) * p.scale
    hu, hv = length / 2 + 1.5, 1.25 * width + 1.5
    lay = canvas.layer(p.center, (-hu, -hv, hu, hv), p.angle)
    if lay.empty:
        return
    sole = ellipse_pts(length / 2, width / 2, 28)
    sole[:, 1] *= 1.0 + 0.3 * sole[:, 0] / length  # wider at the toes
    rubber = MU["rubber"] * rng.uniform(1.0, 1.6)
    for side, flip in ((-1, 1.0), (1, -1.0 if rng.random() < 0.5 else 1.0)):
        off = np.array([0.0, side * width * 0.55]) + rng.normal(0, 0.5, 2)
        shoe = sole * (flip, 1.0) + off
        lay.polygon(shoe, rubber)
        heel = ellipse_pts(length * 0.16, width * 0.36, 16) * (flip, 1.0) + off + (-flip * length * 0.3, 0)
        lay.polygon(heel, rubber * 1.4)
        lay.flush()
        lay.line(np.array([[-0.15 * length, 0.0], [0.05 * length, 0.0]]) * (flip, 1.0) + off, 1.0, MU["steel"] * 0.08)
        eyelets = np.stack([np.linspace(0.0, 0.25 * length, 5) * flip, np.zeros(5)], axis=1) + off
        for e in eyelets:
            for s_ in (-1, 1):
                lay.line(circle_pts(0.3, lay.k, 8) + e + (0, s_ * 1.2), 0.1, MU["brass"] * 0.1, closed=True)
        lay.flush()
    lay.commit()


def draw_umbrella(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A folded umbrella: a steel shaft, thin steel ribs bunched along it, fabric and a handle."""
    length = rng.uniform(22, 30) * p.scale
    lay = canvas.layer(p.center, (-length / 2 - 4.5, -2.5, length / 2 + 1.5, 2.5), p.angle)
    if lay.empty:
        return
    lay.polygon(np.array([[-length / 2 + 4, -2.0], [length / 2, -0.3], [length / 2, 0.3], [-length / 2 + 4, 2.0]]),
                MU["nylon"] * 1.5)  # furled canopy
    lay.flush()
    lay.line(np.array([[-length / 2, 0.0], [length / 2 + 1.0, 0.0]]), 0.5, MU["steel"] * 0.12)  # shaft
    ribs = np.zeros((8, 2, 2))
    ribs[:, 0] = np.stack([np.full(8, -length / 2 + 4.5), np.linspace(-1.6, 1.6, 8)], axis=1)
    ribs[:, 1] = (length / 2 - 0.5, 0.0)
    lay.lines(ribs, 0.1, MU["steel"] * 0.1)
    lay.flush()
    lay.polygon(rounded_rect_pts(2.5, 1.1, 0.8) + (-length / 2 - 1.5, 0.0), MU["plastic"] * 2.2)  # handle
    lay.commit()


def draw_belt(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A rolled or loose belt: a faint leather strap and a dense steel buckle."""
    pts = smooth_curve(rng, rng.uniform(20, 40), n=24, wiggle=rng.uniform(4, 10))
    pts -= pts[0]
    lay = canvas.layer(p.center, extent(pts, 3.5))
    if lay.empty:
        return
    lay.line(pts, 3.5, MU["leather"] * 0.4)
    lay.flush()
    ang = math.atan2(*(pts[0] - pts[1])[::-1])
    frame = rotate(rounded_rect_pts(2.0, 2.3, 0.5), -ang)
    lay.line(frame, 0.45, MU["steel"] * 0.35, closed=True)
    lay.line(rotate(np.array([[-2.0, 0.0], [1.8, 0.0]]), -ang), 0.25, MU["steel"] * 0.3)
    lay.commit()


def draw_pen(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A pen: a plastic tube with a metal tip, a spring and a clip."""
    length = rng.uniform(12, 15)
    lay = canvas.layer(p.center, (-length / 2 - 0.5, -1.0, length / 2 + 0.5, 1.0), p.angle)
    if lay.empty:
        return
    lay.line(np.array([[-length / 2, 0.0], [length / 2 - 1.0, 0.0]]), 1.0, MU["plastic"] * 0.6)
    lay.flush()
    lay.line(np.array([[-length / 2 + 1, 0.0], [length / 2 - 1.5, 0.0]]), 0.25, MU["plastic"] * 0.4)  # refill
    lay.line(np.array([[length / 2 - 1.5, 0.0], [length / 2, 0.0]]), 0.3, MU["brass"] * 0.2)  # tip
    lay.line(np.array([[-length / 2 + 0.5, -0.6], [-length / 2 + 4.5, -0.6]]), 0.2, MU["steel"] * 0.06)  # clip
    lay.commit()


def draw_book(canvas: Canvas, rng: np.random.Generator, p: Placement) -> None:
    """A book: a thick stack of paper with harder covers."""
    hu, hv = rng.uniform(6.0, 9.0) * p.scale, rng.uniform(8.0, 12.0) * p.scale
    lay = canvas.layer(p.center, (-hu - 0.5, -hv - 0.5, hu + 0.5, hv + 0.5), p.angle)
    if lay.empty:
        return
    lay.polygon(rect_pts(-hu, -hv, hu, hv), MU["paper"] * rng.uniform(1.5, 3.5))
    lay.flush()
    lay.line(rect_pts(-hu, -hv, hu, hv), 0.3, MU["paper"] * 2.0, closed=True)
    lay.commit()


#: Benign object kinds and how to draw them.
CLUTTER: Dict[str, Callable] = {
    "clothes": draw_clothes, "cable": draw_cable, "electronics": draw_electronics,
    "bottle": draw_bottle, "coins": draw_coins, "keys": draw_keys, "binder": draw_binder,
    "shoes": draw_shoes, "umbrella": draw_umbrella, "belt": draw_belt, "pen": draw_pen, "book": draw_book,
    "laptop": draw_laptop, "springs": draw_springs,
}


# =================================================================================================
# Threats: each returns its footprint box (canvas pixels)
# =================================================================================================
def draw_handgun(canvas: Canvas, rng: np.random.Generator, p: Placement):
    """A pistol (slide over barrel, angled grip with magazine, trigger guard) or, one time in
    three, a revolver (long barrel, cylinder, curved grip). Very dense steel: black in the scan."""
    steel = MU["steel"]
    parts = []  # (outline or polyline in local cm, value, width_cm or None for a filled polygon)
    if rng.random() < 0.67:  # pistol
        ls, hs = rng.uniform(16.5, 20.0), rng.uniform(2.9, 3.5)
        ga, gl, gw = math.radians(rng.uniform(14, 22)), rng.uniform(8.0, 9.5), rng.uniform(4.0, 4.8)
        ug0 = -ls / 2 + 0.5
        ug1 = ug0 + gw
        down = np.array([-math.sin(ga), math.cos(ga)])
        grip = np.array([[ug0 - 0.8, 0.0], [ug1, 0.0], *(np.array([[ug1, 1.0], [ug0, 1.0]]) + gl * down)])
        mag = np.array([[ug0 + 0.5, 1.0], [ug1 - 0.5, 1.0],
                        *(np.array([[ug1 - 0.4, 1.0], [ug0 + 0.6, 1.0]]) + (gl + 0.3) * down)])
        parts += [
            (grip, steel * 0.1 + MU["plastic"] * 3.0, None),
            (rect_pts(-ls / 2 + 1.0, -0.2, ls / 2 - 2.5, 1.2), steel * 0.3, None),  # frame
            (np.array([[-ls / 2, -hs], [ls / 2 - 0.5, -hs], [ls / 2, -hs + 0.6], [ls / 2, 0.0], [-ls / 2, 0.0]]),
             steel * 0.45, None),  # slide
            (rect_pts(ls / 2 - 1.2, -hs - 0.35, ls / 2 - 0.6, -hs), steel * 0.3, None),  # front sight
            (rect_pts(-ls / 2 + 0.6, -hs - 0.4, -ls / 2 + 1.6, -hs), steel * 0.3, None),  # rear sight
        ]
        gx = ug1 + 0.3
        guard = np.array([[gx, 1.1], [gx + 0.3, 3.4], [gx + 2.5, 3.7], [gx + 4.2, 3.0], [gx + 4.6, 1.1]])
        trigger = np.array([[gx + 2.0, 1.2], [gx + 1.6, 2.3], [gx + 1.8, 3.0]])
        parts += [(guard, steel * 0.3, 0.5), (trigger, steel * 0.3, 0.4)]
        extra = [(np.array([[-ls / 2 + 4.0, -hs * 0.55], [ls / 2, -hs * 0.55]]), steel * 0.3, 1.1),  # barrel
                 (mag, steel * 0.25, None)]  # magazine (with cartridges)
    else:  # revolver
        lb = rng.uniform(7.0, 15.0)
        ga = math.radians(rng.uniform(22, 35))
        down = np.array([-math.sin(ga), math.cos(ga)])
        grip = np.array([[-5.0, 0.5], [-2.0, 0.5], *(np.array([[-2.0, 0.5], [-5.0, 0.5]]) + 9.5 * down)])
        parts += [
            (grip, MU["wood"] * 3.0 + steel * 0.15, None),
            (rect_pts(-5.5, -2.8, 2.0, 1.0), steel * 0.4, None),  # frame
            (rect_pts(2.0, -2.6, 2.0 + lb, -1.2), steel * 0.45, None),  # barrel
            (rect_pts(1.5 + lb, -3.0, 2.0 + lb, -2.6), steel * 0.3, None),  # front sight
            (np.array([[-5.5, -2.5], [-7.5, -3.8], [-7.0, -2.0]]), steel * 0.4, None),  # hammer spur
            (np.array([[-1.5, 1.0], [-1.2, 3.2], [1.5, 3.3], [2.2, 1.0]]), steel * 0.3, 0.45),  # guard
        ]
        extra = [(rounded_rect_pts(2.2, 1.9, 0.6) + (-0.5, -0.9), steel * 0.5, None)]  # cylinder
    all_pts = np.vstack([q for q, _, _ in parts + extra])
    centre = (all_pts.min(axis=0) + all_pts.max(axis=0)) / 2
    lay = canvas.layer(p.center, extent(all_pts - centre, 0.6), p.angle, p.scale, p.mirror)
    for stage in (parts, extra):
        for q, value, width in stage:
            if width is None:
                lay.polygon(q - centre, value)
            else:
                lay.line(q - centre, width, value)
        lay.flush()
    return lay.commit(want_box=True)


def draw_knife(canvas: Canvas, rng: np.random.Generator, p: Placement):
    """A knife: a steel blade tapering to a point (thicker along the spine), a lighter wooden or
    plastic handle with the steel tang, rivets and bolster showing through."""
    lb, w = rng.uniform(9.0, 18.0), rng.uniform(1.8, 3.2)
    lh, hw = rng.uniform(9.0, 12.0), rng.uniform(1.8, 2.6)
    steel = MU["steel"]
    uu = np.linspace(0.0, lb, 14)
    belly = np.maximum((uu - 0.5 * lb) / (0.5 * lb), 0.0) ** 1.6
    edge = np.stack([uu, w / 2 - 0.85 * w * belly], axis=1)
    tip_v = -w / 2 + 0.15 * w
    if rng.random() < 0.3:  # clip point: the spine drops to the tip
        spine = np.array([[lb, tip_v], [0.65 * lb, -w / 2], [0.0, -w / 2]])
    else:
        spine = np.array([[lb, tip_v], [0.8 * lb, -w / 2], [0.0, -w / 2]])
    blade = np.vstack([edge, spine])
    ridge = np.array([[0.0, -w / 2], [0.75 * lb, -w / 2], [0.95 * lb, tip_v + 0.05 * w],
                      [0.7 * lb, -w / 2 + 0.35 * w], [0.0, -w / 2 + 0.45 * w]])
    off = np.array([(lh - lb) / 2, 0.0])  # centre the knife on its length
    half = (lb + lh) / 2 + 0.5
    hv = 0.6 * max(w, hw) + 0.3
    lay = canvas.layer(p.center, (-half, -hv, half, hv), p.angle, p.scale, p.mirror)
    lay.polygon(blade + off, steel * rng.uniform(0.15, 0.2))
    lay.polygon(ridge + off, steel * rng.uniform(0.28, 0.35))
    lay.polygon(rounded_rect_pts(lh / 2, hw / 2, hw * 0.4) + (-lh / 2, 0) + off,
                MU[rng.choice(["wood", "plastic"])] * 2.0)
    lay.flush()
    if rng.random() < 0.65:  # full tang with rivets
        lay.polygon(rect_pts(-lh + 0.4, -hw * 0.3, 0.0, hw * 0.3) + off, steel * 0.2)
        for k in range(rng.integers(2, 4)):
            lay.circle(np.array([-lh * (0.2 + 0.3 * k), 0.0]) + off, 0.25, steel * 0.45)
    else:  # hidden tang: a narrow rod
        lay.line(np.array([[-lh * 0.7, 0.0], [0.0, 0.0]]) + off, 0.5, steel * 0.4)
    lay.polygon(rect_pts(-0.9, -hw * 0.55, 0.0, hw * 0.55) + off, steel * 0.4)  # bolster
    return lay.commit(want_box=True)


def draw_razor_blade(canvas: Canvas, rng: np.random.Generator, p: Placement):
    """A double-edge razor blade: a thin steel rectangle with notched ends, the slotted centre
    cut-out (slot, round centre hole, two wider windows) and slightly denser ground edges.

    Real blades are 0.1 mm thick and almost transparent at 60 keV; the effective thickness here is
    exaggerated (about 1.4 mm) so the blade reads as the dark object it is in GDXray scans.
    """
    a, b = 2.2, 1.1
    steel = MU["steel"] * rng.uniform(0.13, 0.16)
    outline = np.array([[-a, -b], [a, -b], [a, -0.2], [a - 0.25, 0.0], [a, 0.2], [a, b], [-a, b],
                        [-a, 0.2], [-a + 0.25, 0.0], [-a, -0.2]])
    lay = canvas.layer(p.center, (-a - 0.3, -b - 0.3, a + 0.3, b + 0.3), p.angle, p.scale, p.mirror)
    lay.polygon(outline, steel)
    for s in (-1, 1):
        lay.line(np.array([[-a, s * (b - 0.12)], [a, s * (b - 0.12)]]), 0.24, steel * 1.35)
    lay.polygon(rounded_rect_pts(1.5, 0.1, 0.1), 0.0)  # slot
    lay.polygon(circle_pts(0.3, lay.k), 0.0)  # centre hole
    for s in (-1, 1):
        lay.polygon(rounded_rect_pts(0.3, 0.28, 0.12) + (s * 1.05, 0), 0.0)  # windows
        lay.polygon(circle_pts(0.16, lay.k) + (s * 1.65, 0), 0.0)
    return lay.commit(want_box=True)


def draw_shuriken(canvas: Canvas, rng: np.random.Generator, p: Placement):
    """A throwing star: 4 to 8 points, a thicker hub and a central hole."""
    n = int(rng.integers(4, 9))
    r_out = rng.uniform(4.5, 6.5)
    r_in = r_out * rng.uniform(0.28, 0.45)
    steel = MU["steel"]
    lay = canvas.layer(p.center, r_out + 0.5, p.angle, p.scale, p.mirror)
    lay.polygon(star_pts(n, r_out, r_in, twist=rng.uniform(-0.3, 0.3)), steel * rng.uniform(0.18, 0.24))
    if rng.random() < 0.5:
        lay.polygon(circle_pts(r_in * 0.85, lay.k), steel * 0.3)
    lay.polygon(circle_pts(r_out * rng.uniform(0.1, 0.16), lay.k), 0.0)
    return lay.commit(want_box=True)


#: Threat classes and how to draw them (keys are :data:`~vae_keras.io.manifest.CLASSES`).
THREATS: Dict[str, Callable] = {
    "handgun": draw_handgun, "knife": draw_knife, "razor_blade": draw_razor_blade, "shuriken": draw_shuriken,
}
assert set(THREATS) == set(CLASSES), "every class needs a drawer"


# =================================================================================================
# Sampling a bag and rendering it
# =================================================================================================
def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of the set with ``seed`` (independent of batching)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def scan_window(rng: np.random.Generator, preset: Preset) -> Tuple[float, float, float, float]:
    """The scanned part of the square field of view, ``(x0, y0, x1, y1)`` cm: a scan of one of the
    preset's aspect ratios, letterboxed (long side = the field of view, centred)."""
    aspect = float(rng.choice(preset.aspects))
    short = FOV_CM / aspect
    lo, hi = (FOV_CM - short) / 2, (FOV_CM + short) / 2
    if rng.random() < preset.portrait:
        return (lo, 0.0, hi, FOV_CM)
    return (0.0, lo, FOV_CM, hi)


#: Mean number of each clutter kind in a cabin bag (25 x 18 cm half-sides) at clutter density 1;
#: each count is Poisson, scaled by the bag's area.
CLUTTER_MEANS = {"clothes": 0.75, "cable": 0.6, "electronics": 0.4, "laptop": 0.7, "bottle": 0.5, "coins": 0.18,
                 "keys": 0.18, "binder": 0.15, "shoes": 0.35, "umbrella": 0.08, "belt": 0.12, "pen": 0.4,
                 "book": 0.08, "springs": 0.4}

#: Clutter kinds laid over a threat to hide it (Difficulty.occlusion), with their weights.
OCCLUDERS = {"electronics": 0.3, "bottle": 0.2, "book": 0.15, "shoes": 0.1, "clothes": 0.25}


def sample_spec(rng: np.random.Generator, seed: int, index: int, size: int = 224,
                benign_fraction: float = 0.3, preset="gdxray", difficulty=None) -> PhantomSpec:
    """Draw what one bag contains: the scan window, the bag, its clutter, and its threats."""
    preset, difficulty = get_preset(preset), as_difficulty(difficulty)
    benign = bool(rng.random() < benign_fraction)
    scan = scan_window(rng, preset)
    sx, sy = (scan[2] - scan[0]) / 2, (scan[3] - scan[1]) / 2  # half-sides of the scan, cm
    # bag: its long side along the scan's, filling the preset's share of it, slightly turned
    fill = rng.uniform(*preset.bag_fill)
    long_, short_ = max(sx, sy), min(sx, sy)
    a = long_ * fill * rng.uniform(0.92, 1.0)
    b = min(short_ * fill * rng.uniform(0.9, 1.05), a * rng.uniform(0.7, 0.95))
    angle = (0.0 if sx >= sy else np.pi / 2) + rng.normal(0, 0.05)
    room = np.maximum(np.array([sx, sy]) * (1.0 - fill), 0.0) + 0.5
    off = rng.uniform(-1, 1, 2) * room
    bag = BagSpec(center=(FOV_CM / 2 + off[0], FOV_CM / 2 + off[1]), half_size=(float(a), float(b)),
                  angle=float(angle), trolley=bool(rng.random() < 0.3))

    def visible_point(inset):  # a point of the bag, inside the scan
        for _ in range(20):
            x, y = bag.random_point(rng, inset)
            if scan[0] + inset < x < scan[2] - inset and scan[1] + inset < y < scan[3] - inset:
                break
        return x, y

    def place(kind, inset, scale_range, center=None, max_angle=np.pi):
        return Placement(kind, visible_point(inset) if center is None else center,
                         float(rng.uniform(-max_angle, max_angle)), float(rng.uniform(*scale_range)),
                         bool(rng.random() < 0.5))

    area = (a * b) / (25.0 * 18.0)  # bag area / a typical cabin bag's
    density = difficulty.clutter * area
    counts = {kind: int(rng.poisson(m * density)) for kind, m in CLUTTER_MEANS.items()}
    if counts["laptop"] + counts["electronics"] == 0 and rng.random() < min(1.0, 0.9 * difficulty.clutter):
        counts[str(rng.choice(["laptop", "electronics"]))] = 1  # most bags carry a device
    clutter = [place(kind, 4.0, (0.5, 1.25) if kind == "bottle" else (0.8, 1.25))
               for kind, c in counts.items() for _ in range(c)]
    threats = []
    if not benign:
        n = int(rng.choice([1, 2, 3], p=[0.55, 0.37, 0.08]))
        pose = math.radians(difficulty.pose)
        for _ in range(n):
            kind = str(rng.choice(CLASSES))
            # razor blades are small (4.3 cm): kept at the large end so they survive 64 px
            lo, hi = (1.0, 1.35) if kind == "razor_blade" else (0.85, 1.2)
            t = place(kind, 5.0, (lo * difficulty.threat_size, hi * difficulty.threat_size), max_angle=pose)
            threats.append(t)
            if rng.random() < difficulty.occlusion:  # something laid over the threat
                kind = str(rng.choice(list(OCCLUDERS), p=list(OCCLUDERS.values())))
                centre = (t.center[0] + rng.normal(0, 1.0), t.center[1] + rng.normal(0, 1.0))
                clutter.append(place(kind, 4.0, (0.9, 1.3), center=centre))
    return PhantomSpec(seed=int(seed), index=int(index), size=int(size), benign=benign, bag=bag,
                       clutter=clutter, threats=threats, scan=scan, preset=preset)


def render_spec(spec: PhantomSpec, rng: np.random.Generator, return_maps: bool = False):
    """Render a :class:`PhantomSpec`; ``rng`` supplies the fine detail and the photon noise.

    Returns:
        ``(image, labels, boxes)`` as :func:`render_phantom`; with ``return_maps`` a fourth item,
        ``{"clutter": ..., "threats": ...}``: the ``(n, n)`` line-integral maps (rendering grid)
        of the bag with its clutter and of the threats alone (what tests measure occlusion on).
    """
    canvas = Canvas(spec.size, FOV_CM)
    if spec.preset.belt:
        draw_conveyor(canvas, rng, spec.scan)
    draw_bag(canvas, rng, spec.bag)
    for p in spec.clutter:
        CLUTTER[p.kind](canvas, rng, p)
    before = canvas.mu_t.copy() if return_maps else None
    # the scan window in output pixels (the rest is white padding)
    k = spec.size / FOV_CM
    wx0, wy0 = int(round(spec.scan[0] * k)), int(round(spec.scan[1] * k))
    wx1, wy1 = int(round(spec.scan[2] * k)), int(round(spec.scan[3] * k))
    boxes = []
    for p in spec.threats:
        box = canvas.to_output_box(THREATS[p.kind](canvas, rng, p))
        if box is not None:
            box = [max(box[0], wx0), max(box[1], wy0), min(box[2], wx1), min(box[3], wy1)]
        if box is not None and box[2] > box[0] and box[3] > box[1]:  # (a threat outside the scan is dropped)
            boxes.append({"label": p.kind, "box": box})
    image = spec.preset.scanner.image(canvas.mu_t, rng, FOV_CM / spec.size, canvas.oversample)  # (size, size)
    image[:wy0] = 1.0
    image[wy1:] = 1.0
    image[:, :wx0] = 1.0
    image[:, wx1:] = 1.0
    present = {b["label"] for b in boxes}
    labels = [c for c in CLASSES if c in present]
    if return_maps:
        return image, labels, boxes, {"clutter": before, "threats": canvas.mu_t - before}
    return image, labels, boxes


def render_phantom(seed: int, index: int, size: int = 224, benign_fraction: float = 0.3,
                   preset="gdxray", difficulty=None) -> Tuple[np.ndarray, List[str], List[dict]]:
    """Render image ``index`` of the phantom set with ``seed``.

    Args:
        seed: the data set's seed.
        index: the image's number in the set (any non-negative int).
        size: output side in pixels (geometry scales with it; 32 to 1024 are sensible).
        benign_fraction: probability that the bag carries no threat.
        preset: framing preset, a name from :data:`PRESETS` (``"gdxray"``: the bag fills the
            scan; ``"belt"``: a bag on a conveyor) or a :class:`Preset`.
        difficulty: threat difficulty, a :class:`Difficulty`, a dict of its fields or None
            (the defaults: any pose, 30% of threats covered by an object).

    Returns:
        ``image``: ``(size, size)`` float32 in ``[0, 1]`` (padding 1.0, open field ~0.976, metal
        nearly black); ``labels``: threat classes present, in :data:`CLASSES` order, no duplicates;
        ``boxes``: one ``{"label": ..., "box": [x1, y1, x2, y2]}`` per threat, output pixels,
        inclusive-exclusive, clipped to the scan.

    Example:
        >>> image, labels, boxes = render_phantom(0, 3, size=64)
        >>> image.shape, image.dtype
        ((64, 64), dtype('float32'))
    """
    if int(size) < 8:
        raise DataError(f"size must be at least 8 pixels, got {size}")
    if not 0.0 <= float(benign_fraction) <= 1.0:
        raise DataError(f"benign_fraction must be in [0, 1], got {benign_fraction}")
    rng = image_rng(seed, index)
    spec = sample_spec(rng, seed, index, int(size), float(benign_fraction), preset, difficulty)
    return render_spec(spec, rng)


# =================================================================================================
# Writing a prepared data set
# =================================================================================================
def split_of(n: int, seed: int, test_fraction: float) -> List[str]:
    """``"train"``/``"test"`` for each of ``n`` images: exactly ``round(n * test_fraction)``
    test images (at least one when n >= 2 and the fraction is positive), chosen by a
    permutation drawn from ``seed`` (independent of the images' own generators)."""
    n_test = int(round(n * test_fraction))
    if n >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED, 0x59117])).permutation(n)
    split = ["train"] * n
    for i in perm[:n_test]:
        split[int(i)] = "test"
    return split


def save_png_fast(path: PathLike, image: np.ndarray) -> Path:
    """The project's one encoder (:func:`vae_keras.io.images.png_bytes`, same 8-bit rounding) at
    zlib level 1, written under a temporary name and renamed (atomic) but *not* flushed to disk:
    :func:`write_phantom_dataset` flushes them all with one :func:`~vae_keras.io.atomic.sync_files`
    before it writes the manifest. (Noisy X-ray images barely compress better at zlib's default
    level 6, 9 ms per 224 x 224 image against 3 ms here; an ``fsync`` per file cost another ~7 ms
    of waiting per image, more than the rendering.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(png_bytes(image, compress_level=1))
    os.replace(tmp, path)
    return path


def _render_and_save(job) -> ManifestRow:
    """Worker: render one image, write its PNG atomically, return its manifest row."""
    out_dir, i, split, size, seed, benign_fraction, preset, difficulty = job
    image, labels, boxes = render_phantom(seed, i, size, benign_fraction, preset, difficulty)
    rel = f"{split}/phantom_{i:06d}.png"
    save_png_fast(Path(out_dir) / rel, image)
    return ManifestRow(path=rel, split=split, labels=labels, boxes=boxes, series="",
                       source=f"phantom:{seed}:{i}")


def write_phantom_dataset(out_dir: PathLike, n: int, size: int = 224, seed: int = 0,
                          benign_fraction: float = 0.3, test_fraction: float = 0.3,
                          progress: bool = True, workers: int = 2, preset="gdxray",
                          difficulty=None) -> List[ManifestRow]:
    """Render ``n`` phantoms into the prepared layout and write ``manifest.csv`` last.

    Layout: ``out_dir/train/phantom_000123.png``, ``out_dir/test/...``, ``out_dir/manifest.csv``.
    An existing manifest is removed first and the new one is written only once every PNG is on
    disk, so a killed run never leaves a manifest listing missing (or stale) images.

    Args:
        out_dir: data set root (created).
        n: number of images.
        size: image side in pixels.
        seed: data set seed; image ``i`` depends only on ``(seed, i)``.
        benign_fraction: fraction of bags without a threat.
        test_fraction: fraction of images in the test split (exact, chosen from ``seed``).
        progress: show a progress bar on stderr.
        workers: processes rendering and encoding PNGs (1 = in this process). The result is
            the same for any value.
        preset: framing preset (see :func:`render_phantom`), ``"gdxray"`` by default.
        difficulty: threat difficulty (see :class:`Difficulty`), defaults when None.

    Returns:
        The manifest rows, in index order.
    """
    n = int(n)
    if n < 1:
        raise DataError(f"n must be a positive number of images, got {n}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    splits = split_of(n, seed, test_fraction)
    preset, difficulty = get_preset(preset), as_difficulty(difficulty)  # (errors before any work)
    jobs = [(str(out_dir), i, splits[i], int(size), int(seed), float(benign_fraction), preset, difficulty)
            for i in range(n)]
    bar = Progress(progress)
    rows: List[ManifestRow] = []
    workers = max(1, min(int(workers), os.cpu_count() or 1))
    if workers > 1 and n >= 4 * workers:
        # fork is fastest, but forking a process that has started TensorFlow's threads can hang
        ctx = multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else None)
        with ctx.Pool(workers) as pool:
            for row in pool.imap(_render_and_save, jobs, chunksize=16):
                rows.append(row)
                bar.count(len(rows), n, "phantoms")
    else:
        for job in jobs:
            rows.append(_render_and_save(job))
            bar.count(len(rows), n, "phantoms")
    sync_files(out_dir, [out_dir / r.path for r in rows])  # every PNG on disk before the manifest lists it
    write_manifest(out_dir / MANIFEST, rows)
    return rows
