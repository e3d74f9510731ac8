"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every writer in the project goes through these helpers: the bytes go to a temporary file in
the same folder, are flushed to disk, and the file is renamed over the target name. ``rename``
within one file system is atomic on POSIX and Windows, so a process killed at any moment leaves
either the old file or the new one, never a truncated one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from vae_keras.io.images import png_bytes

PathLike = Union[str, os.PathLike]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _synced_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _synced_temp(path: Path, data: bytes) -> str:
    """``data`` in a hidden temporary file beside ``path``, flushed to disk, with the usual permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_png_atomic(path: PathLike, image: np.ndarray, compress_level: int = 6) -> Path:
    """Save a grayscale image atomically as 8-bit PNG (the one encoder: :func:`vae_keras.io.images.png_bytes`).

    Args:
        image: ``(H, W)`` or ``(H, W, 1)`` array, either ``uint8`` or float in ``[0, 1]``.
        compress_level: zlib level (6 here, for figures kept in git; data sets use 1).
    """
    return atomic_write_bytes(path, png_bytes(image, compress_level))


def sync_files(folder: PathLike, paths: Sequence[PathLike] = ()) -> None:
    """Flush written files to disk: one ``syncfs`` of ``folder``'s file system on Linux, else an
    ``fsync`` per file in ``paths`` (cheaper than one ``fsync`` per file as each is written)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError, TypeError):  # not Linux (no syncfs), or it failed: the portable way
        pass
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:  # some platforms refuse fsync on a read-only descriptor
            pass
        finally:
            os.close(fd)
