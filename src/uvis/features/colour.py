"""A weights-free appearance embedding for tracking: the colour histogram of a mask's pixels.

Each mask gets a ``bins``^3 RGB histogram of its pixels; its square root, L2-normalised, makes the cosine
similarity the tracker uses the Bhattacharyya coefficient of the two colour distributions (1: same colours).
"""

from __future__ import annotations

import numpy as np
import torch


def colour_embeddings(frame: np.ndarray, masks: list[np.ndarray], bins: int = 4) -> torch.Tensor:
    """[H, W, 3] uint8 frame + HxW bool masks -> [len(masks), bins**3] unit-norm float32 embeddings."""
    if not masks:
        return torch.zeros(0, bins**3)
    q = (frame.astype(np.int32) * bins) // 256
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    out = np.zeros((len(masks), bins**3), np.float64)
    for i, m in enumerate(masks):
        if m.any():
            out[i] = np.bincount(code[m], minlength=bins**3)
    out = np.sqrt(out / np.maximum(out.sum(1, keepdims=True), 1))
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return torch.from_numpy(out.astype(np.float32))
