"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every writer in the project goes through these helpers: the bytes go to a temporary file in
the same folder, are flushed to disk, and the file is renamed over the target name. ``rename``
within one file system is atomic on POSIX and Windows, so a process killed at any moment leaves
either the old file or the new one, never a truncated one.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, os.PathLike]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_png_atomic(path: PathLike, image: np.ndarray) -> Path:
    """Save a grayscale image atomically as 8-bit PNG.

    Args:
        image: ``(H, W)`` or ``(H, W, 1)`` array, either ``uint8`` or float in ``[0, 1]``.
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"expected a (H, W) or (H, W, 1) grayscale image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.asarray(arr, np.float32) * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
