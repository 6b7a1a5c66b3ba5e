"""Stage 2 training: frame-level samples from pseudo-labels, the set loss, AdamW, AMP, DDP, exact resume.

The exports load lazily, so that ``uvis.train.run_folder`` (the run layout) imports without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uvis.train.config import TrainConfig
    from uvis.train.dataset import pseudo_labels_from_dataset
    from uvis.train.run_folder import RunFolder
    from uvis.train.trainer import train

__all__ = ["RunFolder", "TrainConfig", "pseudo_labels_from_dataset", "train"]
_HOMES = {"RunFolder": "uvis.train.run_folder", "TrainConfig": "uvis.train.config",
          "pseudo_labels_from_dataset": "uvis.train.dataset", "train": "uvis.train.trainer"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'uvis.train' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
