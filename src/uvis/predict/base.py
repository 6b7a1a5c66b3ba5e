"""The interface of every per-frame predictor: what the ``Segmenter`` (and self-training) may ask of one.

A ``Predictor`` turns a batch of frames into one ``FrameDetections`` per frame, with one class-probability column
per class of its ``vocabulary``. Everything a caller may use is declared here, so nothing probes a predictor
for optional parts:

- ``temporal``: True for a predictor that looks one frame ahead (motion): ``predict`` then gets the frame after
  the batch as ``next_frame`` (None after the last batch), and ``start_video()`` is called before each video;
- ``min_score``: candidates scoring below it may be dropped early (a trained model then never upsamples their
  masks); None keeps all. The ``Segmenter`` sets it on its own copy (``copy``) to its tracker's threshold;
- ``with_vocabulary(names)``: a NEW predictor reporting these classes; the models and weights are shared, the
  predictor it came from is unchanged. The default, for a closed vocabulary, keeps the columns of known names
  (not renormalised, so an object of another class keeps a low probability); open-vocabulary predictors (CLIP)
  override it to take any names;
- ``fingerprint()``: what weights and settings the predictions come from (e.g. ``{"file", "sha256"}`` of a
  trained model's weights), recorded with results so that a rerun with other weights is not mixed in; empty
  when there is nothing to identify.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from uvis.data.vocabulary import Vocabulary, clean_names
from uvis.predict.types import FrameDetections


class Predictor(abc.ABC):
    """Frames ([B, H, W, 3] uint8 RGB) in, one ``FrameDetections`` per frame out (see the module docstring)."""

    temporal: bool = False
    min_score: float | None = None

    @property
    @abc.abstractmethod
    def vocabulary(self) -> Vocabulary:
        """The classes of the ``class_probs`` columns, in order."""

    @abc.abstractmethod
    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[FrameDetections]:
        """Detections for each of ``frames``; ``next_frame``: the frame after them (temporal predictors)."""

    def with_vocabulary(self, names: Sequence[str]) -> Predictor:
        """A predictor reporting only these known classes (their ids and columns kept; UserError for others)."""
        vocabulary, columns = self.vocabulary.restrict(clean_names(names))
        return RestrictedPredictor(self, vocabulary, columns)

    def fingerprint(self) -> dict[str, Any]:
        """The weights (and settings) these predictions depend on; empty when there is nothing to identify."""
        return {}

    def start_video(self) -> None:  # noqa: B027 (a no-op unless temporal)
        """A new video begins (a temporal predictor forgets the previous frame)."""

    def copy(self) -> Predictor:
        """A shallow copy: the same models, its own settings (``min_score``)."""
        return copy.copy(self)


class RestrictedPredictor(Predictor):
    """Another predictor with its class probabilities restricted to some of its columns (not renormalised: the
    scores stay those of the full vocabulary, and restricting to "dog" does not make every object 100% dog)."""

    def __init__(self, inner: Predictor, vocabulary: Vocabulary, columns: list[int]):
        self._inner = inner.copy()  # its own min_score; the models stay shared
        self._vocabulary = vocabulary
        self._columns = list(columns)
        self.temporal = inner.temporal

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    @property  # type: ignore[override]
    def min_score(self) -> float | None:
        return self._inner.min_score

    @min_score.setter
    def min_score(self, value: float | None) -> None:
        self._inner.min_score = value

    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[FrameDetections]:
        return [FrameDetections(d.embeddings, d.class_probs[:, self._columns], d.scores, d.masks)
                for d in self._inner.predict(frames, next_frame)]

    def with_vocabulary(self, names: Sequence[str]) -> Predictor:
        return self._inner.with_vocabulary(names)  # from the full vocabulary, not this subset

    def fingerprint(self) -> dict[str, Any]:
        return self._inner.fingerprint()

    def start_video(self) -> None:
        self._inner.start_video()

    def copy(self) -> Predictor:
        return RestrictedPredictor(self._inner, self._vocabulary, self._columns)
