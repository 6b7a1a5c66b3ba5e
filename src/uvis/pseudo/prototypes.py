"""Semantic prototype memory: per-class mean CLIP image embeddings that veto or correct CLIP's labels.

CLIP names each crop on its own, so a few crops get a wrong class, and some masks are not objects at
all. Confident crops of a class look alike, so the mean of their (unit) image embeddings, the class
*prototype*, is a cleaner reference than the text embedding for this particular data. Each candidate
is then compared with its class prototype and with all other prototypes:

1. its class has no prototype yet (fewer than ``min_members`` confident masks): kept as CLIP named it
   (no evidence either way; its similarity is reported as None);
2. another prototype is closer than its own by strictly more than ``relabel_margin``: relabelled to that
   class (its class probability becomes CLIP's probability for the new class);
3. its cosine similarity to its (possibly new) class prototype is strictly below ``reject_threshold``:
   removed as a false positive.

Memory bound: each class keeps at most ``max_per_class`` embeddings, the most confident ones (a
min-heap on the class probability; on equal probability the older entry stays). The prototype is the
re-normalised mean of those. Keeping the top-M (rather than an EMA) makes the prototype independent
of the order of arrival in two-pass mode and lets a burst of confident masks replace weak early ones
in online mode.

Modes: ``two-pass`` builds the memory from every confident mask of the collection, then filters all;
``online`` walks frames in order, filters each frame against the memory built from earlier frames, and
then adds the frame's kept, confident masks (under their final labels).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from uvis.errors import UserError

MODES = ("two-pass", "online")


@dataclass
class PrototypeConfig:
    """Thresholds of the prototype memory (cosine similarities of unit CLIP image embeddings).

    The defaults are not tuned on real data yet (no pretrained CLIP weights were available): with
    ViT-B/32 crops, same-class cosines are typically well above 0.5 and different-class ones lower.
    """

    enabled: bool = True  # False: labels pass through unchanged (ablation)
    mode: str = "two-pass"  # "two-pass" (build from all, then filter) or "online" (frame by frame)
    min_prob: float = 0.5  # a mask joins its class memory only if its class probability >= min_prob
    max_per_class: int = 256  # memory bound M: the M most confident embeddings per class (= top-k)
    min_members: int = 3  # a class has a prototype once it holds at least this many embeddings
    reject_threshold: float = 0.5  # cosine to the own prototype strictly below this -> removed
    relabel_margin: float = 0.05  # another prototype closer by strictly more than this -> relabelled

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown prototype mode '{self.mode}'", fix=f"use one of {', '.join(MODES)}")
        if self.max_per_class < 1 or self.min_members < 1:
            raise UserError("max_per_class and min_members must be >= 1", fix="pass positive sizes")
        if self.min_members > self.max_per_class:
            raise UserError("min_members exceeds max_per_class: no class could ever get a prototype",
                            fix="make min_members <= max_per_class")
        if self.relabel_margin < 0:
            raise UserError("relabel_margin must be >= 0", fix="pass a non-negative margin")


@dataclass
class Decision:
    """What the memory does with one candidate."""

    action: str  # "kept" | "relabelled" | "removed"
    label: int  # final class index
    prob: float  # final class probability
    similarity: float | None  # cosine to the final class prototype; None when that class has none


class PrototypeMemory:
    """Bounded per-class stores of the most confident unit embeddings, with their mean as prototype."""

    def __init__(self, num_classes: int, dim: int, cfg: PrototypeConfig):
        self.cfg = cfg
        self.dim = dim
        self._heaps: list[list[tuple[float, int, np.ndarray]]] = [[] for _ in range(num_classes)]
        self._seq = 0
        self._protos = np.zeros((num_classes, dim), dtype=np.float32)
        self._has = np.zeros(num_classes, dtype=bool)
        self._dirty = False

    @property
    def num_classes(self) -> int:
        return len(self._heaps)

    def size(self, label: int) -> int:
        return len(self._heaps[label])

    def add(self, label: int, embedding: np.ndarray, prob: float) -> bool:
        """Offer a mask to its class memory; True when it was stored."""
        if prob < self.cfg.min_prob:
            return False
        heap = self._heaps[label]
        self._seq += 1
        # Min-heap on (prob, -seq): the root is the least confident, newest entry -> evicted first.
        entry = (float(prob), -self._seq, np.asarray(embedding, dtype=np.float32))
        if len(heap) < self.cfg.max_per_class:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)
        else:
            return False
        self._dirty = True
        return True

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """(VxD unit prototypes, V bool: class has a prototype)."""
        if self._dirty:
            for c, heap in enumerate(self._heaps):
                if len(heap) >= self.cfg.min_members:
                    mean = np.mean([e for _, _, e in heap], axis=0)
                    norm = float(np.linalg.norm(mean))
                    self._has[c] = norm > 0
                    self._protos[c] = mean / norm if norm > 0 else 0
                else:
                    self._has[c] = False
            self._dirty = False
        return self._protos, self._has

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine to every prototype (NaN where a class has none)."""
        protos, has = self.prototypes()
        sims = protos @ np.asarray(embedding, dtype=np.float32)
        return np.where(has, sims, np.nan)

    def decide(self, label: int, embedding: np.ndarray, probs: np.ndarray) -> Decision:
        """Keep, relabel or remove one candidate named ``label`` with class probabilities ``probs``."""
        prob = float(probs[label])
        if not self.cfg.enabled:
            return Decision("kept", label, prob, None)
        sims = self.similarities(embedding)
        own = sims[label]
        if np.isnan(own):
            return Decision("kept", label, prob, None)
        action = "kept"
        others = sims.copy()
        others[label] = np.nan
        if not np.all(np.isnan(others)):
            best = int(np.nanargmax(others))
            if float(others[best]) - float(own) > self.cfg.relabel_margin:
                action, label, prob, own = "relabelled", best, float(probs[best]), others[best]
        if float(own) < self.cfg.reject_threshold:
            action = "removed"
        return Decision(action, label, prob, float(own))


@dataclass
class MemoryResult:
    """Outcome for N candidates, plus per-class counts (indexed by class)."""

    keep: np.ndarray  # N bool
    labels: np.ndarray  # N int, final class index
    probs: np.ndarray  # N float, final class probability
    similarity: np.ndarray  # N float, cosine to the final class prototype (NaN: no prototype)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    memory_sizes: dict[int, int] = field(default_factory=dict)


def _empty_counts(num_classes: int) -> dict[int, dict[str, int]]:
    return {c: {"named": 0, "kept": 0, "removed": 0, "relabelled": 0, "relabelled_in": 0} for c in range(num_classes)}


def apply_memory(
    labels: np.ndarray,
    probs: np.ndarray,
    embeddings: np.ndarray,
    cfg: PrototypeConfig,
    *,
    frames: Sequence[Sequence[int]] | None = None,
) -> MemoryResult:
    """Run the memory over N candidates (CLIP labels, NxV probabilities, NxD unit embeddings).

    ``frames`` lists candidate indices frame by frame in processing order (online mode; default: one
    candidate per step in index order). Two-pass mode ignores it.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float32)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    n = len(labels)
    num_classes = probs.shape[1] if probs.ndim == 2 else 0
    memory = PrototypeMemory(num_classes, embeddings.shape[1] if embeddings.ndim == 2 else 0, cfg)
    out = MemoryResult(keep=np.ones(n, dtype=bool), labels=labels.copy(),
                       probs=probs[np.arange(n), labels] if n else np.zeros(0, np.float32),
                       similarity=np.full(n, np.nan, dtype=np.float32), counts=_empty_counts(num_classes))

    def settle(i: int) -> Decision:
        d = memory.decide(int(labels[i]), embeddings[i], probs[i])
        c = out.counts[int(labels[i])]
        c["named"] += 1
        if d.action == "removed":
            c["removed"] += 1
            out.keep[i] = False
        else:
            out.counts[d.label]["kept"] += 1
            if d.action == "relabelled":
                c["relabelled"] += 1
                out.counts[d.label]["relabelled_in"] += 1
        out.labels[i], out.probs[i] = d.label, d.prob
        out.similarity[i] = np.nan if d.similarity is None else d.similarity
        return d

    if not cfg.enabled or cfg.mode == "two-pass":
        if cfg.enabled:
            for i in range(n):
                memory.add(int(labels[i]), embeddings[i], float(probs[i, labels[i]]))
        for i in range(n):
            settle(i)
    else:
        order = frames if frames is not None else [[i] for i in range(n)]
        seen = sorted(i for f in order for i in f)
        if seen != list(range(n)):
            raise ValueError("frames must list every candidate index exactly once")
        for frame in order:
            decisions = [(i, settle(i)) for i in frame]  # against the memory of earlier frames only
            for i, d in decisions:
                if d.action != "removed":
                    memory.add(d.label, embeddings[i], d.prob)
    out.memory_sizes = {c: memory.size(c) for c in range(num_classes)}
    return out
