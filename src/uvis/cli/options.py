"""Flags that several commands share, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse


def add_fps_argument(p: argparse.ArgumentParser) -> None:
    """``--fps``: the frame rate of frame-folder inputs (video files keep their own)."""
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of frame folders, for the overlay videos and the outputs (default: the dataset's "
                        "own: DAVIS 24, YouTube-VIS 6, i.e. every 5th frame of 30 fps video; other folders 30); "
                        "video files keep their own")



def add_motion_weight_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--motion-weight``, the same in every command that takes ``--features``."""
    p.add_argument("--motion-weight", type=float, default=0.5,
                   help="with --features dino+motion: the motion graph's share of the fused graph (0: plain MaskCut, "
                        "1: motion only; default 0.5)")
