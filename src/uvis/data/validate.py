"""Checks of user input at the boundary, shared by every command: numbers, worker counts, class lists, JSON.

Numeric flags have one meaning, and one set of allowed values, wherever they appear (``--lr`` in ``train`` and
``run``, ``--score-threshold`` in ``segment`` ...): ``FLAG_RANGES`` holds them, keyed by the argparse ``dest``.
``check_arguments`` applies it to a parsed command line before any work starts, so ``--lr inf`` or
``--score-threshold nan`` is one line at once, not an error after an hour of training.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvis.errors import UserError


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric flag: ``low``/``high`` bounds (None: open), each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be > low (else >= low)
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
        return " and ".join(parts) if parts else "a finite number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


MAX_SIDE = 2**15  # pixels: larger than any real video (8K is 7680x4320); a bigger size is a mistake or a bomb

POSITIVE = Range(0, None, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)
COSINE = Range(-1, 1)

# argparse dest -> allowed values; a float flag not listed here must still be finite.
FLAG_RANGES: dict[str, Range] = {
    "lr": POSITIVE,
    "clip_weight": NON_NEGATIVE,
    "steps": AT_LEAST_ONE,
    "batch_size": AT_LEAST_ONE,
    "clip_batch_size": AT_LEAST_ONE,
    "checkpoint_every": AT_LEAST_ONE,
    "top_k": AT_LEAST_ONE,
    "num_masks": AT_LEAST_ONE,
    "resolution": Range(16, 8192),
    "workers": NON_NEGATIVE,
    "seed": Range(0, 2**32 - 1),
    "score_threshold": UNIT,
    "continue_threshold": UNIT,
    "min_score": UNIT,
    "min_prob": UNIT,
    "similarity_threshold": COSINE,
    "reject_threshold": COSINE,
    "relabel_margin": Range(0, 2),
    "tau": Range(0, 1, high_open=True),
    "context": Range(0, 10),
    "fps": Range(0, 1000, low_open=True),  # frames per second of frame folders
}


def flag_name(action: argparse.Action) -> str:
    """The flag as the user typed it: the longest option string (``--lr``), or the positional's name."""
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def check_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Every numeric flag given: finite, and inside its ``FLAG_RANGES`` entry; ``--workers`` bounded by the CPUs."""
    for action in parser._actions:  # the parser of the command that ran
        value = getattr(args, action.dest, None)
        if action.type not in (int, float) or value is None or isinstance(value, bool):
            continue
        flag = flag_name(action)
        allowed = FLAG_RANGES.get(action.dest)
        if not math.isfinite(value):
            raise UserError(f"{flag} {value} is not a finite number",
                            fix=f"pass a number {allowed.describe() if allowed else ''}".rstrip())
        if allowed is not None and not allowed.contains(value):
            raise UserError(f"{flag} {_num(value)} is out of range", fix=f"pass a value {allowed.describe()}")
    workers = getattr(args, "workers", None)
    if isinstance(workers, int):
        from uvis.data.workers import check_workers

        check_workers(workers)


def finite_number(value: Any, what: str, *, path: str | Path | None = None, allowed: Range | None = None,
                  fix: str | None = None, param: str | None = None) -> float:
    """``value`` as a float when it is a real, finite number (in ``allowed``); else a one-line error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (allowed is None or allowed.contains(float(value))):
        return float(value)
    want = allowed.describe() if allowed else "a finite number"
    raise UserError(f"{what} is {value!r}, not {want}", path=path, fix=fix or f"use {want}", param=param)


def parse_json_text(text: str, *, path: str | Path, fix: str) -> Any:
    """Parsed JSON text, or one line naming the file: malformed, or nested too deep to parse."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON ({e})", path=path, fix=fix) from None
    except RecursionError:
        raise UserError("JSON nested too deeply to read", path=path, fix=fix) from None


def frame_size(height: int, width: int, *, path: str | Path, what: str = "video") -> None:
    """A frame size a video can have: positive, and at most ``MAX_SIDE`` a side (decoding a header that claims
    60000x60000 would take gigabytes before failing)."""
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise UserError(f"{what} is {width}x{height} pixels; at most {MAX_SIDE} a side is supported", path=path,
                        fix="scale it down, e.g. ffmpeg -i IN -vf scale=1920:-2 OUT.mp4")


def input_path(path: str | Path, *, folder_ok: bool = True, file_ok: bool = True) -> Path:
    """An input that exists and is a regular file or a folder: a FIFO, socket or device would block or fail
    deep inside a reader."""
    path = Path(path)
    if not path.exists():
        raise UserError("no such file or folder" if folder_ok else "file not found", path=path, fix="check the path")
    if path.is_dir():
        if not folder_ok:
            raise UserError("is a folder, not a file", path=path, fix="pass the file itself")
        return path
    if not path.is_file():
        raise UserError("not a regular file or folder (a pipe, socket or device)", path=path,
                        fix="save the data to a file and pass that")
    if not file_ok:
        raise UserError("is a file, not a folder", path=path, fix="pass the folder")
    return path
