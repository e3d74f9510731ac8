"""Rasterising objects into a line-integral map: a canvas, per-object layers, outline helpers.

Geometry is in centimetres so that a phantom looks the same at 32, 64 or 224 pixels: the
canvas knows its pixels per cm. Each object is drawn in its own *layer*, a small window of the
canvas with the object's pose (centre, rotation, scale, mirror). Inside a layer, values are
the object's total ``mu * thickness`` (painted with Pillow on a float32 "F" image, or computed
with numpy for rounded profiles); committing the layer *adds* it into the canvas, so different
objects overlap the way X-ray attenuation does. Only the window is touched, never the whole
image, which keeps rendering fast.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Smallest internal rendering size: small images are rendered finer and averaged down (see
#: :func:`data_prep.xray_physics.box_downsample`), so thin wires still show at 32 px.
MIN_RENDER_SIZE = 128


class Canvas:
    """The line-integral map of one image, ``(n, n)`` float32 with ``n = size * oversample``.

    Args:
        size: detector (output) side in pixels.
        fov_cm: side of the field of view in cm.
        oversample: rendering grid per detector pixel; default renders at least
            :data:`MIN_RENDER_SIZE` pixels.
    """

    def __init__(self, size: int, fov_cm: float, oversample: Optional[int] = None):
        self.size = int(size)
        self.oversample = int(oversample or max(1, -(-MIN_RENDER_SIZE // self.size)))
        self.n = self.size * self.oversample
        self.fov_cm = float(fov_cm)
        self.px_per_cm = self.n / self.fov_cm
        self.mu_t = np.zeros((self.n, self.n), np.float32)  # (n, n) sum of mu * thickness
        #: (n, n) float32 0/1: where objects may be (inside the bag); None = everywhere
        self.clip: Optional[np.ndarray] = None

    def set_clip(self, outline_cm) -> None:
        """Restrict later layers to the inside of the polygon ``outline_cm`` (image-frame cm)."""
        img = Image.new("L", (self.n, self.n), 0)
        pts = np.asarray(outline_cm, np.float64) * self.px_per_cm - 0.5
        ImageDraw.Draw(img).polygon(pts.ravel().tolist(), fill=1)
        self.clip = np.asarray(img).astype(np.float32)

    def layer(self, center_cm, radius_cm, angle: float = 0.0, scale: float = 1.0,
              mirror: bool = False) -> "Layer":
        """A window around ``center_cm`` big enough for an object of local radius ``radius_cm``
        (a number), or for the local box ``(u0, v0, u1, v1)`` (cm) turned by the pose."""
        return Layer(self, center_cm, radius_cm, angle, scale, mirror)

    def to_output_box(self, box) -> Optional[list]:
        """Canvas-pixel box ``[x1, y1, x2, y2)`` -> output-pixel box, clipped; None if empty."""
        if box is None:
            return None
        o = self.oversample
        x1, y1 = box[0] // o, box[1] // o
        x2, y2 = -(-box[2] // o), -(-box[3] // o)
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(self.size, x2), min(self.size, y2)
        if x2 <= x1 or y2 <= y1:
            return None
        return [int(x1), int(y1), int(x2), int(y2)]


class Layer:
    """One object's window on the canvas, with the object's pose.

    Local coordinates ``(u, v)`` are cm in the object's own frame (u along its length, v
    across, y-down like the image). ``to_px`` maps them through scale, mirror, rotation and
    translation to window pixels.
    """

    def __init__(self, canvas: Canvas, center_cm, radius_cm, angle: float, scale: float,
                 mirror: bool):
        self.canvas = canvas
        self.k = float(scale) * canvas.px_per_cm  # window pixels per local cm
        self.c = np.array([float(center_cm[0]), float(center_cm[1])]) * canvas.px_per_cm  # canvas px
        ca, sa = math.cos(angle), math.sin(angle)
        flip = -1.0 if mirror else 1.0
        # px = M @ (u, v) + c ; columns are the images of the local axes
        self.m = np.array([[ca, -sa * flip], [sa, ca * flip]]) * self.k
        if np.ndim(radius_cm) == 0:  # a disc of that radius around the centre
            cx, cy = self.c
            rx = ry = float(radius_cm) * self.k + 2.0
        else:  # a local box (u0, v0, u1, v1): the window is the box's rotated bounding box
            u0, v0, u1, v1 = (float(x) for x in radius_cm)
            cx, cy = self.m @ ((u0 + u1) / 2, (v0 + v1) / 2) + self.c
            am = np.abs(self.m)
            rx = am[0, 0] * (u1 - u0) / 2 + am[0, 1] * (v1 - v0) / 2 + 2.0
            ry = am[1, 0] * (u1 - u0) / 2 + am[1, 1] * (v1 - v0) / 2 + 2.0
        n = canvas.n
        self.x0 = max(0, int(math.floor(cx - rx)))
        self.y0 = max(0, int(math.floor(cy - ry)))
        x1 = min(n, int(math.ceil(cx + rx)))
        y1 = min(n, int(math.ceil(cy + ry)))
        self.w, self.h = max(0, x1 - self.x0), max(0, y1 - self.y0)
        self.empty = self.w == 0 or self.h == 0
        self.offset = self.c - (self.x0, self.y0) - 0.5
        self._img: Optional[Image.Image] = None
        self._draw: Optional[ImageDraw.ImageDraw] = None
        self._arr: Optional[np.ndarray] = None

    # -- painting with Pillow (values overwrite: paint the object's parts back to front) -------
    @property
    def draw(self) -> ImageDraw.ImageDraw:
        if self._draw is None:
            self._img = Image.new("F", (max(1, self.w), max(1, self.h)), 0.0)
            self._draw = ImageDraw.Draw(self._img)
        return self._draw

    def to_px(self, pts) -> np.ndarray:
        """``(N, 2)`` local cm -> ``(N, 2)`` Pillow coordinates of the window (pixel centres at integers)."""
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return pts @ self.m.T + self.offset

    def polygon(self, pts, value: float) -> None:
        """Fill the polygon ``pts`` (local cm) with ``value`` (mu * thickness)."""
        if not self.empty:
            self.draw.polygon(self.to_px(pts).ravel().tolist(), fill=float(value))

    def line(self, pts, width_cm: float, value: float, closed: bool = False) -> None:
        """A polyline ``width_cm`` wide. Lines thinner than a pixel are drawn 1 px wide with the
        value scaled down, so their total attenuation (partial volume) is right."""
        if self.empty:
            return
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        if closed:
            pts = np.vstack([pts, pts[:1]])
        w_px = width_cm * self.k
        w_int = max(1, int(round(w_px)))
        self.draw.line(self.to_px(pts).ravel().tolist(), fill=float(value * w_px / w_int),
                       width=w_int, joint="curve" if w_int > 2 else None)

    def lines(self, polylines: np.ndarray, width_cm: float, value: float) -> None:
        """Many open polylines at once, ``(K, N, 2)`` local cm (one transform for all)."""
        if self.empty or len(polylines) == 0:
            return
        px = self.to_px(polylines).reshape(len(polylines), -1)
        w_px = width_cm * self.k
        w_int = max(1, int(round(w_px)))
        fill = float(value * w_px / w_int)
        for q in px.tolist():
            self.draw.line(q, fill=fill, width=w_int)

    def polygons(self, polys, value: float) -> None:
        """Many polygons of the same value at once, ``(K, N, 2)`` local cm (one transform for all:
        the keys of a keyboard, the cells of a battery)."""
        polys = np.asarray(polys, np.float64)
        if self.empty or len(polys) == 0:
            return
        px = self.to_px(polys).reshape(len(polys), -1)
        fill = float(value)
        for q in px.tolist():
            self.draw.polygon(q, fill=fill)

    def circle(self, center, radius_cm: float, value: float) -> None:
        """A filled disc (as a polygon, so it follows the layer's pose)."""
        self.polygon(circle_pts(radius_cm, self.k) + center, value)

    # -- numpy profiles (values add) -------------------------------------------------------------
    def grid(self) -> Tuple[np.ndarray, np.ndarray]:
        """Local coordinates ``(u, v)`` of every window pixel centre, each ``(h, w)`` float32."""
        xs = np.arange(self.w, dtype=np.float32) + (self.x0 + 0.5 - self.c[0])
        ys = np.arange(self.h, dtype=np.float32) + (self.y0 + 0.5 - self.c[1])
        inv = np.linalg.inv(self.m).astype(np.float32)
        u = inv[0, 0] * xs[None, :] + inv[0, 1] * ys[:, None]
        v = inv[1, 0] * xs[None, :] + inv[1, 1] * ys[:, None]
        return u, v

    def add(self, values: np.ndarray) -> None:
        """Add a ``(h, w)`` array of ``mu * thickness`` to the layer."""
        if self.empty:
            return
        self._arr = values.astype(np.float32) if self._arr is None else self._arr + values

    def values(self) -> np.ndarray:
        """The layer's ``(h, w)`` ``mu * thickness`` so far (Pillow paint + numpy profiles)."""
        if self._img is None:
            return self._arr if self._arr is not None else np.zeros((self.h, self.w), np.float32)
        painted = np.asarray(self._img)  # (h, w) float32, read-only
        return painted if self._arr is None else painted + self._arr

    def replace(self, values: np.ndarray) -> None:
        """Set the layer to a ``(h, w)`` array (e.g. ``values()`` times a texture)."""
        if not self.empty:
            self._img, self._draw, self._arr = None, None, values.astype(np.float32)

    def flush(self) -> None:
        """Freeze what is painted so far: later paint *adds* on top of it instead of replacing
        it (a chip on a board, a tang inside a handle, two overlapping coins)."""
        if not self.empty and self._img is not None:
            self.replace(self.values())

    def commit(self, want_box: bool = False, threshold: float = 0.05, clip: bool = True):
        """Add the layer into the canvas, inside the canvas's clip mask (the bag) when ``clip``.

        Returns its footprint ``[x1, y1, x2, y2)`` in canvas pixels (where ``mu * t >
        threshold``, after clipping) when ``want_box``, else None.
        """
        if self.empty:
            return None
        vals = self.values()
        win = (slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w))
        if clip and self.canvas.clip is not None:
            vals = vals * self.canvas.clip[win]
        self.canvas.mu_t[win] += vals
        if not want_box:
            return None
        mask = vals > threshold
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return None
        return [self.x0 + int(cols[0]), self.y0 + int(rows[0]),
                self.x0 + int(cols[-1]) + 1, self.y0 + int(rows[-1]) + 1]


# -- outlines in local cm -------------------------------------------------------------------------
def circle_pts(radius: float, px_per_cm: float = 10.0, n: Optional[int] = None) -> np.ndarray:
    """``(n, 2)`` points on a circle; enough of them for a smooth edge at the given scale."""
    if n is None:
        n = int(np.clip(radius * px_per_cm * 1.5, 8, 64))
    return radius * _unit_circle(n)


@functools.lru_cache(maxsize=None)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([np.cos(t), np.sin(t)], axis=1)
    pts.flags.writeable = False
    return pts


def ellipse_pts(rx: float, ry: float, n: int = 24) -> np.ndarray:
    """``(n, 2)`` points on an axis-aligned ellipse centred at 0."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)


def extent(pts, margin: float = 0.5):
    """Local bounding box ``(u0, v0, u1, v1)`` of ``(..., 2)`` points, grown by ``margin`` cm."""
    pts = np.asarray(pts).reshape(-1, 2)
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    return (lo[0], lo[1], hi[0], hi[1])


def rect_pts(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    """``(4, 2)`` corners of an axis-aligned rectangle."""
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


def rounded_rect_pts(hu: float, hv: float, r: float, n_corner: int = 6) -> np.ndarray:
    """``(4*n_corner, 2)`` outline of a rectangle of half-sides ``hu, hv`` with corner radius ``r``."""
    r = min(r, hu, hv)
    arc, sign = _corner_arcs(n_corner)  # (4*n_corner, 2) unit arcs, corner signs
    return arc * r + sign * (hu - r, hv - r)


@functools.lru_cache(maxsize=None)
def _corner_arcs(n_corner: int):
    t = np.concatenate([a0 + np.linspace(0, 0.5 * np.pi, n_corner) for a0 in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)])
    sign = np.repeat(np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64), n_corner, axis=0)
    return np.stack([np.cos(t), np.sin(t)], axis=1), sign


def star_pts(n_points: int, r_outer: float, r_inner: float, twist: float = 0.0) -> np.ndarray:
    """``(2n, 2)`` outline of an ``n``-pointed star; ``twist`` bends the inner vertices (radians)."""
    t = np.arange(2 * n_points) * np.pi / n_points
    r = np.where(np.arange(2 * n_points) % 2 == 0, r_outer, r_inner)
    t = t + np.where(np.arange(2 * n_points) % 2 == 1, twist, 0.0)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def blob_pts(rng: np.random.Generator, radius: float, roughness: float = 0.25, n: int = 40,
             aspect: float = 1.0) -> np.ndarray:
    """``(n, 2)`` outline of a random smooth blob: a circle whose radius varies with a few
    low harmonics (clothes, bags of stuff)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    k = np.arange(2, 6)
    amp = roughness / k * rng.standard_normal(4)
    r = 1.0 + amp @ np.cos(k[:, None] * t + rng.uniform(0, 2 * np.pi, 4)[:, None])
    r = radius * np.clip(r, 0.4, 1.6)
    return np.stack([r * np.cos(t) * aspect, r * np.sin(t)], axis=1)


def smooth_curve(rng: np.random.Generator, length: float, n: int = 32, wiggle: float = 0.6,
                 count: Optional[int] = None) -> np.ndarray:
    """``(n, 2)`` points of a random smooth curve of about ``length`` cm starting at 0: a walk
    whose heading changes smoothly (cables). With ``count``: ``(count, n, 2)``, that many curves."""
    k = 1 if count is None else int(count)
    turn = rng.standard_normal((k, n)) * (wiggle / np.sqrt(n))
    heading = rng.uniform(0, 2 * np.pi, (k, 1)) + 0.5 * np.cumsum(np.cumsum(turn, axis=1), axis=1)
    steps = np.exp(1j * heading) * (length / (n - 1))  # (k, n) complex
    steps[:, 0] = 0.0
    z = np.cumsum(steps, axis=1)
    pts = np.stack([z.real, z.imag], axis=-1)  # (k, n, 2)
    return pts[0] if count is None else pts


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: Sequence[int] = (6, 6),
                 fine: float = 0.0, fine_cells: int = 24) -> np.ndarray:
    """``(h, w)`` float32 smooth random field, zero mean and roughly unit std (wrinkles, cloth).

    A coarse ``cells`` grid of Gaussian values is interpolated with smooth (Gaussian) weights:
    ``Wy @ grid @ Wx.T``, two small matrix products, cheaper than an image resize. ``fine``
    adds a second, finer octave (``fine_cells`` per side) of that relative strength.
    """
    out = _interp_matrix(h, int(cells[0])) @ rng.standard_normal((int(cells[0]), int(cells[1])), dtype=np.float32) \
        @ _interp_matrix(w, int(cells[1])).T
    if fine > 0:
        grid = rng.standard_normal((fine_cells, fine_cells), dtype=np.float32)
        out += fine * (_interp_matrix(h, fine_cells) @ grid @ _interp_matrix(w, fine_cells).T)
    return out


@functools.lru_cache(maxsize=512)
def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """``(n, cells)`` weights spreading ``cells`` knots smoothly over ``n`` pixels (rows sum to
    about unit energy, so the field keeps roughly unit variance)."""
    x = (np.arange(n) + 0.5) / max(n, 1) * cells - 0.5  # pixel positions in knot units
    wts = np.exp(-0.5 * ((x[:, None] - np.arange(cells)[None, :]) / 0.6) ** 2)
    wts /= np.sqrt((wts ** 2).sum(axis=1, keepdims=True))
    out = wts.astype(np.float32)
    out.flags.writeable = False
    return out


def rotate(pts, angle: float) -> np.ndarray:
    """Rotate ``(N, 2)`` points by ``angle`` radians about the origin."""
    ca, sa = math.cos(angle), math.sin(angle)
    return np.asarray(pts, np.float64) @ np.array([[ca, sa], [-sa, ca]])


def resample_polyline(pts, step: float) -> np.ndarray:
    """``(M, 2)`` points every ``step`` cm along the polyline ``pts`` (linear interpolation)."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1] + 1e-9, step)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], axis=1)


def zigzag(pts, pitch: float, amplitude: float) -> np.ndarray:
    """A zigzag following the polyline ``pts``: teeth of a zip, ``pitch`` cm apart."""
    p = resample_polyline(pts, pitch / 2)
    d = np.gradient(p, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) / (np.hypot(d[:, 0], d[:, 1])[:, None] + 1e-9)
    sign = np.where(np.arange(len(p)) % 2 == 0, 1.0, -1.0)[:, None]
    return p + nrm * amplitude * sign
