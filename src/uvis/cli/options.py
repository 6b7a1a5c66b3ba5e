"""Flags that several commands share, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse

from uvis.data.sources import Collection
from uvis.errors import UserError


def add_fps_argument(p: argparse.ArgumentParser) -> None:
    """``--fps``: the frame rate of frame-folder inputs (video files keep their own)."""
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of frame folders, for the overlay videos and the outputs (default: the dataset's "
                        "own: DAVIS 24, YouTube-VIS 6, i.e. every 5th frame of 30 fps video; other folders 30); "
                        "video files keep their own")


def collection_frames(collection: Collection) -> int | None:
    """Frames of a collection when cheap to count (frame lists; video files probed), None if one is unreadable."""
    total = 0
    for item in collection.items:
        if item.file_names is not None:
            total += len(item.file_names)
            continue
        try:
            total += item.open().num_frames
        except UserError:
            return None
    return total


def note_cpu_speed(device: str | None, backbone: str, resolution: int, collection: Collection) -> None:
    """On the CPU, say how long MaskCut's DINO pass will take with ``backbone`` (and what is faster), on stderr."""
    import sys

    from uvis.features.dino import cpu_speed_note, pick_device

    if pick_device(device).type != "cpu":
        return
    note = cpu_speed_note(backbone, resolution, collection_frames(collection))
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
