"""Online tracking by query/appearance embeddings, with a tracking memory bank.

Per frame, confident detections (scoring at least ``score_threshold``) are matched to the
tracks that are still alive or still re-identifiable; then weaker ones (at least
``continue_threshold``) may continue the tracks left over, but never start a track. The cost is
``1 - cosine`` between each candidate's embedding and each track's *memory embedding*; the
assignment is Hungarian (``scipy.optimize.linear_sum_assignment``). A pair whose similarity is
below ``similarity_threshold`` is rejected: a confident candidate then starts a new track.

What a track remembers is the memory bank (``TrackerConfig.memory``):

- ``"ema"``: an exponential moving average of its embeddings. It follows slow appearance drift
  while averaging away a few corrupted frames (partial occlusion, motion blur), so an object can
  be re-identified after an occlusion even when its last frames before the occlusion were bad.
- ``"window"``: the mean of its last ``window`` embeddings (same idea, hard cut-off).
- ``"last"``: only its previous embedding. With ``max_missing=0`` and ``reid_frames=0`` this is the
  MinVIS baseline (frame-to-frame matching of query embeddings), kept for ablation.

A track not matched for more than ``max_missing`` frames is *retired* (no longer live, emits
nothing), but stays matchable for another ``reid_frames`` frames so that an object coming back
from an occlusion gets its old id. After that it is forgotten. The tracker keeps no per-frame
history and never sees masks, so its memory is bounded by ``max_tracks`` x ``window`` embeddings
whatever the video length; masks are the caller's business (see ``uvis.track.video_tracks``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from uvis.predict.types import FrameDetections

MemoryMode = Literal["ema", "window", "last"]


@dataclass
class TrackerConfig:
    """Tracker settings; the defaults suit query embeddings of a Mask2Former-style model at video fps."""

    score_threshold: float = 0.5
    """Detections scoring at least this are tracked: matched to a track, or else they start a new one."""
    continue_threshold: float | None = 0.2
    """Detections scoring in [continue_threshold, score_threshold) may only continue a track that no
    confident detection took (matched after them), never start one; below it they are ignored. So an
    object whose score dips for a few frames keeps its masks and its memory (ByteTrack's idea).
    None = same as score_threshold (no second stage)."""
    similarity_threshold: float = 0.5
    """Minimum cosine similarity for a detection to continue a track; below it a new track starts."""
    memory: MemoryMode = "ema"
    """Memory bank: "ema", "window" or "last" (previous-frame-only, the MinVIS baseline)."""
    momentum: float = 0.8
    """EMA momentum: memory <- momentum * memory + (1 - momentum) * new embedding (1.0 = never update)."""
    window: int = 10
    """Number of recent embeddings averaged in "window" mode."""
    max_missing: int = 5
    """Frames a track may go unmatched before it is retired (0 = retired as soon as it is missed)."""
    reid_frames: int = 30
    """Frames a retired track remains available for re-identification before it is forgotten."""
    max_tracks: int = 100
    """Hard cap on remembered tracks (live + retired); the longest-unseen are dropped first."""

    def __post_init__(self) -> None:
        if self.memory not in ("ema", "window", "last"):
            raise ValueError(f"TrackerConfig.memory must be 'ema', 'window' or 'last', got {self.memory!r}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"TrackerConfig.momentum must be in [0, 1], got {self.momentum}")
        if self.window < 1 or self.max_tracks < 1 or self.max_missing < 0 or self.reid_frames < 0:
            raise ValueError("TrackerConfig: window and max_tracks must be >= 1, max_missing and reid_frames >= 0")

    @classmethod
    def minvis_baseline(cls, **overrides: object) -> TrackerConfig:
        """Previous-frame-only matching with no re-identification (MinVIS), for ablations."""
        base: dict[str, object] = {"memory": "last", "max_missing": 0, "reid_frames": 0}
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


@dataclass
class _Track:
    id: int
    memory: np.ndarray  # [D], unnormalised running memory
    last_seen: int
    hits: int = 1
    recent: deque[np.ndarray] | None = None  # only in "window" mode

    def embedding(self) -> np.ndarray:
        return self.memory / max(float(np.linalg.norm(self.memory)), 1e-12)


@dataclass
class FrameTracks:
    """Tracking output for one frame: which detections were kept, and their track ids."""

    indices: np.ndarray  # [M] int64 indices into the frame's detections
    track_ids: np.ndarray  # [M] int64 track ids (>= 1), aligned with ``indices``
    new_ids: list[int] = field(default_factory=list)  # ids that started in this frame

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Tracker:
    """Online tracker: call ``update`` once per frame, in order; ids are never reused."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._frame = -1

    def reset(self) -> None:
        """Forget everything (start of a new video)."""
        self._tracks.clear()
        self._next_id = 1
        self._frame = -1

    @property
    def frame_index(self) -> int:
        """Index of the last frame passed to ``update`` (-1 before the first)."""
        return self._frame

    @property
    def num_remembered(self) -> int:
        """Tracks held in memory (live + retired-but-re-identifiable)."""
        return len(self._tracks)

    def live_ids(self) -> list[int]:
        """Tracks matched within the last ``max_missing`` frames."""
        return [t.id for t in self._tracks.values() if self._frame - t.last_seen <= self.config.max_missing]

    def remembered_ids(self) -> list[int]:
        return list(self._tracks)

    def memory_size(self) -> int:
        """Number of embedding vectors held: bounded by max_tracks * (window + 1)."""
        return sum(1 + (len(t.recent) if t.recent is not None else 0) for t in self._tracks.values())

    # ------------------------------------------------------------------ per frame

    def update(self, detections: FrameDetections) -> FrameTracks:
        """Assign track ids to this frame's kept detections and update the memory bank."""
        cfg = self.config
        self._frame += 1
        self._forget_expired()

        scores = detections.scores.detach().float().cpu().numpy().reshape(-1)
        low = cfg.score_threshold if cfg.continue_threshold is None else min(cfg.continue_threshold,
                                                                              cfg.score_threshold)
        # Highest-scoring candidates first, so that if the track cap bites it drops the weakest.
        order = np.argsort(-scores, kind="stable")
        high = order[scores[order] >= cfg.score_threshold].astype(np.int64)
        weak = order[(scores[order] >= low) & (scores[order] < cfg.score_threshold)].astype(np.int64)
        if not len(high) and not len(weak):
            self._enforce_cap()
            return FrameTracks(indices=np.zeros(0, np.int64), track_ids=np.zeros(0, np.int64))
        emb = detections.embeddings
        if isinstance(emb, torch.Tensor):
            emb = emb.detach().float().cpu().numpy()
        emb = np.asarray(emb, dtype=np.float32)

        # 1) confident detections against every remembered track
        cand = _normalise(emb[high])
        matched = self._match(cand, list(self._tracks.values()))
        indices, ids, new_ids = [], [], []
        for j, det in enumerate(high.tolist()):
            tid = matched.get(j)
            if tid is None:
                tid = self._start(cand[j])
                new_ids.append(tid)
            else:
                self._extend(self._tracks[tid], cand[j])
            indices.append(det)
            ids.append(tid)
        # 2) weak detections may only continue a track left unmatched by step 1
        if len(weak):
            taken = set(matched.values()) | set(new_ids)
            rest = [t for t in self._tracks.values() if t.id not in taken]
            cand = _normalise(emb[weak])
            for j, tid in sorted(self._match(cand, rest).items()):
                self._extend(self._tracks[tid], cand[j])
                indices.append(int(weak[j]))
                ids.append(tid)
        self._enforce_cap()
        return FrameTracks(indices=np.array(indices, np.int64), track_ids=np.array(ids, np.int64), new_ids=new_ids)

    def _match(self, cand: np.ndarray, tracks: list[_Track]) -> dict[int, int]:
        """Hungarian matching of candidates to ``tracks``; returns {candidate row: track id}."""
        if not tracks or not len(cand):
            return {}
        memory = np.stack([t.embedding() for t in tracks])  # [T, D]
        if memory.shape[1] != cand.shape[1]:
            raise ValueError(f"embedding size changed from {memory.shape[1]} to {cand.shape[1]} within a video")
        sim = cand @ memory.T  # [N, T]
        rows, cols = linear_sum_assignment(1.0 - sim)
        return {
            int(r): tracks[c].id
            for r, c in zip(rows, cols, strict=True)
            if sim[r, c] >= self.config.similarity_threshold
        }

    def _start(self, emb: np.ndarray) -> int:
        tid = self._next_id
        self._next_id += 1
        recent = deque([emb], maxlen=self.config.window) if self.config.memory == "window" else None
        self._tracks[tid] = _Track(id=tid, memory=emb.copy(), last_seen=self._frame, recent=recent)
        return tid

    def _extend(self, track: _Track, emb: np.ndarray) -> None:
        cfg = self.config
        if cfg.memory == "ema":
            # Average unit vectors so every frame weighs the same whatever the raw embedding norm.
            track.memory = cfg.momentum * track.embedding() + (1.0 - cfg.momentum) * emb
        elif cfg.memory == "window":
            assert track.recent is not None
            track.recent.append(emb)
            track.memory = np.mean(np.stack(track.recent), axis=0)
        else:
            track.memory = emb.copy()
        track.last_seen = self._frame
        track.hits += 1

    def _forget_expired(self) -> None:
        horizon = self.config.max_missing + self.config.reid_frames
        # Frames a track has missed so far, before this frame is matched: frame - last_seen - 1.
        for tid in [t.id for t in self._tracks.values() if self._frame - t.last_seen - 1 > horizon]:
            del self._tracks[tid]

    def _enforce_cap(self) -> None:
        excess = len(self._tracks) - self.config.max_tracks
        if excess > 0:
            # Oldest-seen first; among equals, the shortest-lived (fewest hits) first, then the newest id (new
            # tracks of a frame start in descending score order, so the weakest of them goes first).
            victims = sorted(self._tracks.values(), key=lambda t: (t.last_seen, t.hits, -t.id))[:excess]
            for t in victims:
                del self._tracks[t.id]
