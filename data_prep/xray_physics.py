"""The physics of a transmission X-ray image, as pure numpy functions.

A baggage scanner sends X-rays through the bag onto a detector. Along each ray every object
attenuates the beam by Beer-Lambert's law, so the detector sees

    I = I0 * exp(-sum_k mu_k * t_k)

where ``mu_k`` is the linear attenuation coefficient of material ``k`` (1/cm) and ``t_k`` the
length the ray travels through it (cm). The sum is the *line integral* map; a phantom is built by
adding ``mu * thickness`` of each object into that map. Because attenuations add in the exponent,
overlapping objects *multiply* their transmissions: a bottle over a laptop is darker than either,
exactly as in real scans. The detector then counts photons (Poisson noise) and its scintillator
spreads light over neighbouring pixels (a small Gaussian point-spread function).

Why physics rather than painting grey levels: the VAE should learn the statistics of real
scans (multiplicative overlap, noise that grows in dark regions, soft edges), and those come for
free from the forward model.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

#: Linear attenuation coefficients mu (1/cm) at an effective energy of about 60 keV, rounded
#: from NIST XCOM mass attenuation coefficients times density. ``cloth`` is bulk folded textile
#: (about 0.25 g/cm^3 with air between layers); ``lithium_cell`` is the average of a pouch cell.
MATERIALS = {
    "air": 0.0,
    "cloth": 0.05,
    "wood": 0.12,
    "paper": 0.16,
    "leather": 0.20,
    "water": 0.206,
    "plastic": 0.22,
    "nylon": 0.23,
    "rubber": 0.25,
    "fr4": 0.55,  # glass-epoxy circuit board
    "glass": 0.62,
    "silicon": 0.74,
    "aluminium": 0.75,
    "lithium_cell": 1.2,
    "ferrite": 3.5,
    "steel": 9.5,
    "brass": 12.5,
    "copper": 14.3,
}

#: Photons per detector pixel through air: sets the noise level (std of the background ~ 1/sqrt(I0)).
DEFAULT_I0 = 3000.0
#: Detector point-spread function, standard deviation in detector pixels.
DEFAULT_BLUR_SIGMA = 0.7
#: Grey level of unattenuated rays after normalisation: bright, like the white background of
#: GDXray scans, with headroom so photon noise is not all clipped at 1.
AIR_LEVEL = 0.96


def mu(material: str) -> float:
    """Linear attenuation coefficient (1/cm) of ``material`` from :data:`MATERIALS`."""
    try:
        return MATERIALS[material]
    except KeyError:
        raise ValueError(f"unknown material {material!r}; known: {sorted(MATERIALS)}") from None


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ceil(2.5 sigma) (5 taps for sigma=0.7)."""
    radius = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a ``(H, W)`` image with edge replication (no scipy)."""
    if sigma <= 0:
        return image
    k = gaussian_kernel1d(sigma)
    r = len(k) // 2
    h, w = image.shape
    p = np.pad(image, ((0, 0), (r, r)), mode="edge")  # (H, W + 2r)
    out = k[0] * p[:, 0:w]
    for j in range(1, len(k)):
        out += k[j] * p[:, j:j + w]
    p = np.pad(out, ((r, r), (0, 0)), mode="edge")  # (H + 2r, W)
    out = k[0] * p[0:h]
    for j in range(1, len(k)):
        out += k[j] * p[j:j + h]
    return out


def box_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks: ``(H*f, W*f)`` -> ``(H, W)``.

    This is what a detector pixel does with the intensity falling on it, so thin wires and
    sharp edges rendered at a finer grid come out with the right partial-volume grey.
    """
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image[:h * factor, :w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """``(256,)`` float32 quantiles of N(0, 1) at ``(k + 0.5) / 256``, rescaled to unit variance."""
    xs = np.linspace(-6.0, 6.0, 24001)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(xs / math.sqrt(2.0)))
    q = np.interp((np.arange(256) + 0.5) / 256, cdf, xs)
    return (q / q.std()).astype(np.float32)


def fast_standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Zero-mean, unit-variance, bell-shaped float32 noise: inverse-CDF lookup of random bytes.

    Several times faster than ``rng.standard_normal`` for images. The law is N(0, 1) quantised to
    256 levels (tails cut at 2.9 sigma): the photon noise it drives is a few grey levels of an
    8-bit image, where the difference cannot show.
    """
    return _normal_quantiles().take(rng.integers(0, 256, shape, dtype=np.uint8))


def photon_counts(expected: np.ndarray, rng: np.random.Generator, exact_below: float = 50.0
                  ) -> np.ndarray:
    """Poisson-distributed photon counts with the given ``(H, W)`` means.

    Where the mean exceeds ``exact_below`` the Poisson law is replaced by its normal limit
    (mean ``lam``, variance ``lam``): indistinguishable there and four times faster, which matters
    for the 100 images/s budget. Dark pixels (metal) get exact Poisson draws.
    """
    expected = np.asarray(expected, np.float32)
    counts = fast_standard_normal(rng, expected.shape)  # (H, W) float32
    counts *= np.sqrt(expected)
    counts += expected
    low = expected < exact_below
    if low.any():
        counts[low] = rng.poisson(expected[low])
    return np.maximum(counts, 0.0, out=counts)


def attenuation_to_intensity(
    line_integral: np.ndarray,
    rng: Optional[np.random.Generator] = None,
    i0: Optional[float] = DEFAULT_I0,
    blur_sigma: float = DEFAULT_BLUR_SIGMA,
    oversample: int = 1,
    air_level: float = AIR_LEVEL,
) -> np.ndarray:
    """Detector image of a line-integral map: Beer-Lambert, photon noise, PSF, normalisation.

    Args:
        line_integral: ``(H*oversample, W*oversample)`` map of ``sum(mu * thickness)`` (>= 0).
        rng: generator for the photon noise; required unless ``i0`` is None.
        i0: photons per detector pixel through air. ``None`` switches the noise off (the
            expected image), which is what the physics tests use.
        blur_sigma: detector PSF in detector pixels; ``0`` switches the blur off.
        oversample: the map is this many times finer than the detector; transmissions (not
            attenuations) are averaged over each detector pixel.
        air_level: output grey level of an unattenuated ray.

    Returns:
        ``(H, W)`` float32 image in ``[0, 1]``: ``air_level * I / I0`` (bright background,
        dark metal). With noise and blur off, ``f(a + b) / air_level == f(a) * f(b) / air_level**2``.
    """
    line_integral = np.asarray(line_integral, np.float32)
    if line_integral.ndim != 2:
        raise ValueError(f"expected a (H, W) line-integral map, got shape {line_integral.shape}")
    if i0 is not None and rng is None:
        raise ValueError("photon noise needs a numpy Generator: pass rng=, or i0=None for no noise")
    transmission = np.maximum(line_integral, 0.0)
    np.exp(np.negative(transmission, out=transmission), out=transmission)  # I / I0, (H*o, W*o)
    transmission = box_downsample(transmission, int(oversample)).astype(np.float32, copy=False)  # (H, W)
    if i0 is not None:
        transmission *= np.float32(i0)
        transmission = photon_counts(transmission, rng)
        transmission *= np.float32(air_level / i0)
    else:
        transmission *= np.float32(air_level)
    transmission = blur(transmission, blur_sigma)
    return np.clip(transmission, 0.0, 1.0, out=transmission)


# =================================================================================================
# A scanner: what turns a line-integral map into the grey levels of a prepared scan
# =================================================================================================
@dataclass(frozen=True)
class Scanner:
    """A baggage scanner reduced to what shows in a prepared (downsized) image.

    Real scans are taken at 0.1 to 0.5 mm per pixel and shrunk 10 to 40 times by ``prepare``: the
    detector's own blur and most of the photon noise are averaged away, and what stays is the
    geometry (focal-spot blur, in cm at the bag), the photon noise of the large output pixels and
    the scanner's intensity curve (its black and white levels).

    Attributes:
        flux: photons per cm^2 through air; a detector pixel of ``p`` cm receives ``flux * p^2``
            (so a 64 px image is less noisy than a 224 px one of the same scan, as real ones are).
        focal_spot_cm: standard deviation of the focal-spot blur projected onto the bag (cm).
        resample_px: the low-pass of shrinking a scan to the output size (``prepare``'s LANCZOS
            resize), as a Gaussian's standard deviation in output pixels: without it, edges
            rendered on a grid only 1 or 2 times finer than the output stay aliased (jagged),
            far sharper than a real scan shrunk 10 to 40 times.
        black_level: transmission shown as black: scanners window their output, and everything
            below about 4% transmission (a few mm of steel) is printed black, as in GDXray.
        gamma: exponent of the intensity curve (``> 1`` darkens the mid-tones).
        air_level: grey level of an unattenuated ray (the open field); padding is 1.0.
    """

    flux: float = 5.0e6
    focal_spot_cm: float = 0.15
    resample_px: float = 0.3
    black_level: float = 0.12
    gamma: float = 1.0
    air_level: float = 0.976

    def __post_init__(self):
        if not (self.flux > 0 and self.focal_spot_cm >= 0 and self.resample_px >= 0 and 0 <= self.black_level < 1 and self.gamma > 0
                and 0 < self.air_level <= 1):
            raise ValueError(f"invalid scanner parameters: {self}")

    def curve(self, transmission: np.ndarray) -> np.ndarray:
        """The intensity curve, in place: ``air_level * ((T**gamma - black) / (1 - black))``, in [0, 1]."""
        t = transmission
        if self.gamma != 1.0:
            np.power(np.maximum(t, 0.0, out=t), np.float32(self.gamma), out=t)
        t -= np.float32(self.black_level)
        t *= np.float32(self.air_level / (1.0 - self.black_level))
        return np.clip(t, 0.0, 1.0, out=t)

    def image(self, line_integral: np.ndarray, rng: np.random.Generator, cm_per_px: float,
              oversample: int = 1) -> np.ndarray:
        """Scan a ``(H*o, W*o)`` line-integral map into an ``(H, W)`` float32 image in [0, 1].

        Order of the physics: transmission, focal-spot blur (before detection, so the photon
        noise stays sharp), averaging over each detector pixel, photon noise, intensity curve.
        ``cm_per_px`` is the size of an output (detector) pixel.
        """
        t = np.maximum(np.asarray(line_integral, np.float32), 0.0)
        np.exp(np.negative(t, out=t), out=t)  # I / I0, (H*o, W*o)
        sigma = math.hypot(self.focal_spot_cm / cm_per_px, self.resample_px) * oversample  # rendering px
        if sigma >= 0.25:  # (below a quarter pixel the blur cannot show)
            t = blur(t, sigma)
        t = box_downsample(t, int(oversample)).astype(np.float32, copy=False)  # (H, W)
        i0 = np.float32(self.flux * cm_per_px ** 2)
        t *= i0
        t = photon_counts(t, rng)
        t *= np.float32(1.0 / i0)
        return self.curve(t)
