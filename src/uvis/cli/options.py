"""Flags that several commands share, defined once so that they read the same everywhere.

Nothing here imports torch or numpy: ``uvis --help`` and usage errors stay quick. The few library values a help
text names (the DINO backbones, the run steps and ablations) are spelled out here, and ``tests/test_cli_fast.py``
checks them against the library.
"""

from __future__ import annotations

import argparse

from uvis.cli.flags import renamed

DEFAULT_DINO = "dino_vitb8"
# uvis.features.dino.REAL_VITS with timm's and the transformers names of the same weights
DINO_NAMES = {
    "dino_vits16": ("vit_small_patch16_224.dino", "facebook/dino-vits16"),
    "dino_vits8": ("vit_small_patch8_224.dino", "facebook/dino-vits8"),
    "dino_vitb16": ("vit_base_patch16_224.dino", "facebook/dino-vitb16"),
    "dino_vitb8": ("vit_base_patch8_224.dino", "facebook/dino-vitb8"),
}
RUN_STEPS = ("pseudo-label", "name", "train", "segment", "evaluate", "report")  # uvis.pipeline.STEPS
RUN_ABLATIONS = ("no-prototypes", "no-track-memory", "short-prompts", "single-prompt",  # uvis.pipeline.ABLATIONS
                 "masks-1", "masks-2", "masks-4", "masks-5")


def dino_help(default: str = DEFAULT_DINO) -> str:
    """The ``--dino`` help of every command that runs MaskCut."""
    return (f"DINO ViT for MaskCut: {', '.join(DINO_NAMES)} (default {default}); timm's names "
            f"({', '.join(t for t, _ in DINO_NAMES.values())}) take timm's copy from the Hugging Face hub, "
            f"{', '.join(h for _, h in DINO_NAMES.values())} the transformers layout (converted)")


def add_fps_argument(p: argparse.ArgumentParser) -> None:
    """``--fps``: the frame rate of frame-folder inputs (video files keep their own)."""
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of frame folders, for the overlay videos and the outputs (default: the dataset's "
                        "own: DAVIS 24, YouTube-VIS 6, i.e. every 5th frame of 30 fps video; other folders 30); "
                        "video files keep their own")


def add_dino_arguments(p: argparse._ActionsContainer, *, weights_help: str | None = None) -> None:
    """``--dino NAME`` (MaskCut's DINO ViT; ``args.backbone``) and ``--dino-weights PATH``; the old spellings
    ``--backbone`` and ``--weights`` still work, with a note."""
    p.add_argument("--dino", dest="backbone", default=DEFAULT_DINO, metavar="NAME", help=dino_help())
    p.add_argument("--dino-weights", help=weights_help or "DINO checkpoint file, or a folder holding it under its "
                                                         "official name (default: $UVIS_WEIGHTS_DIR, cache, download)")
    renamed(p, "--backbone", "--dino")
    renamed(p, "--weights", "--dino-weights")

def add_motion_weight_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--motion-weight``, the same in every command that takes ``--features``."""
    p.add_argument("--motion-weight", type=float, default=0.5,
                   help="with --features dino+motion: the motion graph's share of the fused graph (0: plain MaskCut, "
                        "1: motion only; default 0.5)")
