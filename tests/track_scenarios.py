"""Constructed embedding sequences for tracker tests (no model involved)."""

from __future__ import annotations

import numpy as np
import torch

from uvis.predict.types import FrameDetections

DIM = 32


def basis(seed: int = 0, n: int = 4) -> np.ndarray:
    """n orthonormal directions in DIM-d space."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(DIM, DIM)))
    return q[:, :n].T.copy()


def frame(embs: list[np.ndarray], scores: list[float] | None = None) -> FrameDetections:
    n = len(embs)
    e = torch.tensor(np.stack(embs) if n else np.zeros((0, DIM)), dtype=torch.float32)
    s = torch.tensor(scores if scores is not None else [0.9] * n, dtype=torch.float32)
    return FrameDetections(embeddings=e, class_probs=torch.full((n, 2), 0.5), scores=s,
                           masks=torch.zeros((n, 1, 1), dtype=torch.bool))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


# Occlusion scenario ---------------------------------------------------------------------------
# Object A's appearance drifts slowly: a(t) rotates in the (u, v) plane by DRIFT rad per frame.
# Before it vanishes behind the occluder O, it is partially occluded for a few frames, and its
# embedding blends gradually towards the occluder's (CONTAMINATION: share of a(t) left). It is then
# fully hidden for OCC frames, and comes back clean (drifted further).
DRIFT = 0.035
CONTAMINATION = [0.9, 0.75, 0.6, 0.5, 0.4]  # frames HIDE-5 .. HIDE-1
HIDE = 30
OCC = 10
LENGTH = 60


def occlusion_sequence(seed: int = 0, noise: float = 0.01) -> tuple[list[FrameDetections], list[list[str]]]:
    """Frames of (A, O) detections and, per frame, the true identity of each detection."""
    u, v, o, _ = basis(seed)
    rng = np.random.default_rng(seed + 1)
    frames, labels = [], []
    for t in range(LENGTH):
        a = np.cos(DRIFT * t) * u + np.sin(DRIFT * t) * v
        occluder = unit(o + 0.05 * v)
        embs, who = [], []
        if t < HIDE or t >= HIDE + OCC:
            k = t - (HIDE - len(CONTAMINATION))
            if 0 <= k < len(CONTAMINATION):
                c = CONTAMINATION[k]
                a = c * a + np.sqrt(1 - c * c) * o
            embs.append(unit(a + noise * rng.normal(size=DIM)))
            who.append("A")
        embs.append(unit(occluder + noise * rng.normal(size=DIM)))
        who.append("O")
        if t % 2:  # detection order carries no identity
            embs, who = embs[::-1], who[::-1]
        frames.append(frame(embs))
        labels.append(who)
    return frames, labels
