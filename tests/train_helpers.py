"""Shared set-up for the training tests: a small synthetic dataset and its ground truth as pseudo-labels."""

from __future__ import annotations

from pathlib import Path

from uvis.data.synthetic import make_dataset
from uvis.data.ytvis import Dataset
from uvis.train import TrainConfig, pseudo_labels_from_dataset


def synthetic_pseudo(root: Path, *, keep_categories: bool = False, num_videos: int = 2, num_frames: int = 6
                     ) -> tuple[Dataset, Path]:
    dataset = make_dataset(root / "data", num_videos=num_videos, num_frames=num_frames, height=64, width=96,
                           num_objects=3, seed=0)
    pseudo = root / ("pseudo_named.json" if keep_categories else "pseudo.json")
    pseudo_labels_from_dataset(dataset, keep_categories=keep_categories).save(pseudo)
    return dataset, pseudo


def tiny_config(root: Path, pseudo: Path, out: str, **kw) -> TrainConfig:
    return TrainConfig.preset_config("tiny", data=str(root / "data"), pseudo=str(pseudo), out=str(root / out),
                                     device="cpu", **kw)
