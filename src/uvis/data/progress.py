"""Progress of long steps, readable both on a terminal and in a log file.

On a terminal a ``tqdm`` bar is shown. When the output is not a terminal (``nohup``, SLURM, a pipe), a bar
would only leave carriage returns in the log, so instead one plain line is written at a fixed interval (and
once at the end) with the work done, the rate and the time left::

    segment bear: 40/82 frames (49%), 2.13 frames/s, ETA 20s
    segment bear: done, 82 frames in 38s (2.14 frames/s)
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Seconds between two log lines when the output is not a terminal (``UVIS_PROGRESS_INTERVAL`` overrides it).
DEFAULT_INTERVAL = 30.0


def format_duration(seconds: float) -> str:
    """'45s', '3m05s', '2h07m' (rounded to whole seconds)."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def log_interval() -> float:
    """The log interval: ``UVIS_PROGRESS_INTERVAL`` seconds when set to a positive number, else 30."""
    try:
        value = float(os.environ.get("UVIS_PROGRESS_INTERVAL", ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


class LogProgress:
    """A progress reporter for logs: the same calls as the parts of ``tqdm`` uvis uses (``update``, ``write``,
    ``set_postfix_str``, ``close``, use as a context manager), printing a line every ``interval`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str = "frame", *, initial: int = 0,
                 interval: float = DEFAULT_INTERVAL, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.interval = initial, interval
        self._initial = initial
        self._stream = stream
        self._clock = clock
        self._start = self._last = clock()
        self._postfix = ""
        self._closed = False

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _units(self, n: float) -> str:
        return self.unit if n == 1 else f"{self.unit}s"

    def rate(self) -> float:
        """Units per second since the start (units done before ``initial`` not counted)."""
        elapsed = self._clock() - self._start
        return (self.n - self._initial) / elapsed if elapsed > 0 else float("nan")

    def line(self) -> str:
        """The current progress line."""
        rate = self.rate()
        rate_text = f"{rate:.3g} {self._units(2)}/s" if math.isfinite(rate) else f"- {self._units(2)}/s"
        if self.total:
            left = (self.total - self.n) / rate if math.isfinite(rate) and rate > 0 else float("nan")
            text = (f"{self.desc}: {self.n}/{self.total} {self._units(self.total)} ({100 * self.n / self.total:.0f}%), "
                    f"{rate_text}, ETA {format_duration(left)}")
        else:
            text = f"{self.desc}: {self.n} {self._units(self.n)}, {rate_text}"
        return text + (f" [{self._postfix}]" if self._postfix else "")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(self.line())

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, text: str) -> None:
        """A message for the user (on stdout, as ``tqdm.write`` puts it)."""
        print(text, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = self._clock() - self._start
        done = self.n - self._initial
        if done <= 0:
            return
        rate = f" ({done / elapsed:.3g} {self._units(2)}/s)" if elapsed > 0 else ""
        self._print(f"{self.desc}: done, {done} {self._units(done)} in {format_duration(elapsed)}{rate}")

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent:
    """A reporter that reports nothing (``enabled=False``)."""

    n = 0

    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, text: str) -> None: ...

    def set_postfix(self, **values: Any) -> None: ...

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None: ...

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None: ...


def progress(total: int | None, desc: str, unit: str = "frame", *, enabled: bool = True, initial: int = 0,
             leave: bool = True, stream: TextIO | None = None, interval: float | None = None) -> Any:
    """A progress reporter for a long step: a tqdm bar on a terminal, timed log lines (``LogProgress``)
    otherwise, nothing with ``enabled=False``. ``stream`` defaults to stderr."""
    if not enabled:
        return _Silent()
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=out, dynamic_ncols=True)
    return LogProgress(total, desc, unit, initial=initial, stream=stream,
                       interval=log_interval() if interval is None else interval)
