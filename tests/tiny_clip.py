"""A tiny randomly initialised CLIP saved as a state_dict, for tests (no real weights exist here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import open_clip
import torch

from uvis.pseudo.clip_model import ClipConfig, ClipModel

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_clip(folder: Path, *, seed: int = 0, name: str = "tiny-clip.pt") -> Path:
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**TINY_CFG, quick_gelu=True)
    path = folder / name
    torch.save(model.state_dict(), path)
    return path


def load_tiny_clip(path: Path) -> ClipModel:
    return ClipModel.load(ClipConfig(model_name="tiny", model_cfg=TINY_CFG, weights=path, device="cpu"))


def patch_clip_load(monkeypatch, folder: Path) -> Path:
    """Make every ``ClipModel.load`` (whatever model it asks for) load a tiny CLIP saved in ``folder``.

    A copy is also put in ``$UVIS_WEIGHTS_DIR`` as ``ViT-B-32.pt``, so the commands' check that every weights
    file is there before work starts finds the default CLIP's file.
    """
    path = save_tiny_clip(folder)
    weights_dir = folder / "weights-dir"
    weights_dir.mkdir(exist_ok=True)
    shutil.copy(path, weights_dir / "ViT-B-32.pt")
    monkeypatch.setenv("UVIS_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setattr(ClipModel, "load", tiny_clip_loader(path))
    return path


def tiny_clip_loader(path: Path) -> staticmethod:
    """A replacement for ``ClipModel.load`` that loads the tiny CLIP at ``path`` whatever model is asked for."""
    load = ClipModel.load
    return staticmethod(lambda cfg: load(ClipConfig(model_name="tiny", model_cfg=TINY_CFG, weights=path, device="cpu")))
