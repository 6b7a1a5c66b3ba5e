"""Flags that several commands share, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse


def add_fps_argument(p: argparse.ArgumentParser) -> None:
    """``--fps``: the frame rate of frame-folder inputs (video files keep their own)."""
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of frame folders, for the overlay videos and the outputs (default: the dataset's "
                        "own: DAVIS 24, YouTube-VIS 6, i.e. every 5th frame of 30 fps video; other folders 30); "
                        "video files keep their own")

