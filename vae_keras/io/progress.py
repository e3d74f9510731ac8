"""The project's one progress reporter: a ``\\r``-updated line on stderr, no TensorFlow needed.

Used by ``prepare``, ``phantoms`` and ``generate``. Two ways to feed it: :meth:`Progress.update`
with a line of your own (``"checking 120/800 files (3 skipped)"``), or :meth:`Progress.count`
with a count, which draws ``label [#####      ] 120/800 41.3 img/s``. :meth:`Progress.message`
prints a line of its own (a skipped file) without breaking the counter. Redraws are throttled
to one per :data:`INTERVAL` seconds, so a fast loop costs nothing.

Example:
    >>> bar = Progress(enabled=True)
    >>> for i in range(1, n + 1):
    ...     bar.count(i, n, "phantoms")
    >>> bar.done()
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

#: Seconds between two redraws of the line.
INTERVAL = 0.1


class Progress:
    """One counter line on ``stream`` (default stderr); nothing at all when ``enabled`` is False.

    ``message`` lines are printed even when disabled: they report something that happened
    (a skipped file), not progress.
    """

    def __init__(self, enabled: bool = True, stream: Optional[TextIO] = None, unit: str = "img"):
        self.enabled = bool(enabled)
        self.stream = stream or sys.stderr
        self.unit = unit
        self._start = time.perf_counter()
        self._last = 0.0
        self._width = 0
        self._text = ""

    def update(self, text: str, force: bool = False) -> None:
        """Show ``text`` as the counter line (at most every :data:`INTERVAL` s unless ``force``)."""
        if not self.enabled or (force and text == self._text and self._width):
            return
        now = time.perf_counter()
        if force or now - self._last >= INTERVAL:
            self._last, self._text = now, text
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()

    def count(self, done: int, total: int, label: str = "") -> None:
        """``label [####    ] done/total rate unit/s``; the line is finished when ``done >= total``."""
        if not self.enabled:
            return
        frac = done / max(1, total)
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        self.update(f"{label} [{'#' * int(30 * frac):<30}] {done}/{total} {rate:6.1f} {self.unit}/s".lstrip(),
                    force=done >= total)
        if done >= total:
            self.done()

    def message(self, text: str) -> None:
        """Print ``text`` on a line of its own (clearing the counter first)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last = 0.0
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the counter line (a newline), if one is shown."""
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
