"""``build_segmenter``: a ``Segmenter`` for a model, in one call (the Python API's, the CLI's, the pipeline's).

    import uvis
    seg = uvis.build_segmenter("runs/x", classes="dog,skateboard", tracker=uvis.TrackerConfig(memory="window"))

The predictor comes from ``uvis.predict.build.build_predictor`` (its module docstring says what ``model``,
``classes``, ``weights`` and the training-free options mean).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uvis.predict.build import Classes, build_predictor
from uvis.track.segmenter import Segmenter
from uvis.track.tracker import TrackerConfig


def build_segmenter(
    model: str | Path = "none",
    *,
    classes: Classes | None = None,
    weights: Mapping[str, str | Path | None] | None = None,
    tracker: TrackerConfig | None = None,
    top_k: int | None = 10,
    **predictor_options: Any,
) -> Segmenter:
    """A ``Segmenter`` around ``build_predictor(model, classes=..., weights=..., **predictor_options)`` with the
    online tracker (``tracker``: its settings, default ``TrackerConfig()``) keeping the ``top_k`` best tracks of
    each video."""
    predictor = build_predictor(model, classes=classes, weights=weights, **predictor_options)
    return Segmenter(predictor, tracker_config=tracker, top_k=top_k)
