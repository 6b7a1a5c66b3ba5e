"""Stage 2 training: frame-level samples from pseudo-labels, the set loss, AdamW, AMP, DDP, exact resume."""

from uvis.train.config import TrainConfig
from uvis.train.dataset import pseudo_labels_from_dataset
from uvis.train.trainer import train

__all__ = ["TrainConfig", "pseudo_labels_from_dataset", "train"]
