"""What the tracker consumes: the detections of one frame, from any per-frame segmenter.

Both the trained VIS model (stage 2, query embeddings) and the training-free path
(stage-1 masks + CLIP embeddings) produce ``FrameDetections``, so one tracker serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FrameDetections:
    """N candidate instances in one frame.

    embeddings: [N, D] appearance/query embeddings (any scale; the tracker normalises them).
    class_probs: [N, K] probabilities over the K vocabulary classes (no "no-object" column).
    scores: [N] confidence of each candidate being an object.
    masks: [N, H, W] bool masks at the video's resolution.
    """

    embeddings: torch.Tensor
    class_probs: torch.Tensor
    scores: torch.Tensor
    masks: torch.Tensor

    def __post_init__(self) -> None:
        n = self.embeddings.shape[0]
        for name in ("class_probs", "scores", "masks"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"FrameDetections.{name} has {getattr(self, name).shape[0]} rows, embeddings {n}")

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def select(self, keep: torch.Tensor) -> FrameDetections:
        return FrameDetections(self.embeddings[keep], self.class_probs[keep], self.scores[keep], self.masks[keep])
