"""An "oracle" frame predictor built from synthetic ground truth, to test everything after the model.

Masks are the ground-truth masks, embeddings a noisy copy of a fixed random vector per object,
class probabilities one-hot-ish on the true class, detection scores high. It also emits, per frame,
one low-score distractor (must be filtered out) and, every third frame, a confident false positive
with random class probabilities (must be ranked below the true objects). Frames are recognised by
their pixel content, so the predictor works whatever order the videos are processed in.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.data import ytvis
from uvis.data.video import read_image
from uvis.data.vocabulary import Vocabulary
from uvis.predict.base import Predictor
from uvis.predict.types import FrameDetections


def frame_key(frame: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest()


class OraclePredictor(Predictor):
    def __init__(self, dataset: ytvis.Dataset, *, dim: int = 32, noise: float = 0.1, seed: int = 0):
        self._vocabulary = Vocabulary.from_categories(dataset.categories)
        self._col = {c.id: i for i, c in enumerate(dataset.categories)}
        self._rng = np.random.default_rng(seed)
        self._noise = noise
        self._dim = dim
        self._index: dict[str, tuple[int, int]] = {}
        for v in dataset.videos:
            for t, path in enumerate(dataset.frame_paths(v)):
                key = frame_key(read_image(path))
                assert key not in self._index, "two identical frames: the oracle cannot tell them apart"
                self._index[key] = (v.id, t)
        self._tracks = {v.id: dataset.tracks_of(v.id) for v in dataset.videos}
        self._vectors = {id(tr): self._rng.normal(size=dim) for tr in dataset.tracks}
        self._calls = [0]  # shared by the copies a Segmenter makes (like a model's weights)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    @property
    def calls(self) -> int:
        """``predict`` calls of this oracle and of its copies."""
        return self._calls[0]

    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[FrameDetections]:
        self._calls[0] += 1
        return [self._one(f) for f in frames]

    def _one(self, frame: np.ndarray) -> FrameDetections:
        vid, t = self._index[frame_key(frame)]
        h, w = frame.shape[:2]
        k = len(self.vocabulary)
        embs, probs, scores, masks = [], [], [], []
        for tr in self._tracks[vid]:
            seg = tr.segmentations[t]
            if seg is None:
                continue
            embs.append(self._vectors[id(tr)] + self._noise * self._rng.normal(size=self._dim))
            p = np.full(k, 0.15 / max(k - 1, 1))
            p[self._col[tr.category_id]] = 0.85
            probs.append(p)
            scores.append(0.9)
            masks.append(mask_utils.decode(seg))
        # a low-score distractor (below the tracker's score threshold)
        blob = np.zeros((h, w), bool)
        blob[: h // 4, : w // 4] = True
        embs.append(self._rng.normal(size=self._dim))
        probs.append(self._rng.dirichlet(np.ones(k)))
        scores.append(0.1)
        masks.append(blob)
        if t % 3 == 0:  # a confident false positive with an unsure class
            embs.append(self._rng.normal(size=self._dim))
            probs.append(self._rng.dirichlet(np.ones(k)))
            scores.append(0.6)
            masks.append(blob[::-1, ::-1].copy())
        return FrameDetections(
            embeddings=torch.tensor(np.stack(embs), dtype=torch.float32),
            class_probs=torch.tensor(np.stack(probs), dtype=torch.float32),
            scores=torch.tensor(scores, dtype=torch.float32),
            masks=torch.from_numpy(np.stack(masks)),
        )
