"""The project's one PNG encoder: grayscale arrays to 8-bit PNG bytes.

Every image the project writes (prepared data sets, phantoms, generated samples, detection
exports, figures) goes through :func:`png_bytes`, so they all round the same way
(``rint(x * 255)``, clipped) and accept the same inputs: ``(H, W)`` or ``(H, W, 1)``, ``uint8``
or float in ``[0, 1]``. Writing the bytes safely is :mod:`vae_keras.io.atomic`'s job.

Why ``compress_level=1`` by default: noisy X-ray images barely compress better at zlib's
default level 6, which takes about 9 ms per 224 x 224 image against 3 ms at level 1 (files
~13% larger; measured for the phantoms). Pass 6 or 9 for files kept in git.
"""
from __future__ import annotations

import io
import math
from typing import Optional

import numpy as np


def to_uint8(image) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 1)``, uint8 or float in [0, 1] -> ``(H, W)`` uint8 (``rint(x * 255)``, clipped)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"expected a (H, W) or (H, W, 1) grayscale image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.asarray(arr, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return arr


def png_bytes(image, compress_level: int = 1) -> bytes:
    """The 8-bit grayscale PNG of ``image`` (see :func:`to_uint8` for the accepted inputs).

    Example:
        >>> data = png_bytes(np.zeros((64, 64, 1), np.float32))    # a black 64x64 PNG
    """
    from PIL import Image                                        # Pillow loads only when writing

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image), mode="L").save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


def tile_images(images, ncols: Optional[int] = None, pad_value: float = 0.0) -> np.ndarray:
    """Tile grayscale images into one grid, separated by 1-pixel lines of ``pad_value``.

    Args:
        images: (n, H, W, 1) or (n, H, W), float in [0, 1] (clipped) or uint8.
        ncols: columns; default ``ceil(sqrt(n))``, at most ``n``.

    Returns:
        float32 ``(rows*H + rows-1, ncols*W + ncols-1)`` in [0, 1].
    """
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"images must be (n, H, W, 1) or (n, H, W) grayscale, got shape {x.shape}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.clip(x.astype(np.float32), 0.0, 1.0)
    n, h, w = x.shape                                            # (n, H, W)
    if n == 0:
        raise ValueError("tile_images needs at least one image, got 0")
    ncols = int(ncols) if ncols else math.ceil(math.sqrt(n))
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), pad_value, np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = x[i]
    return grid
