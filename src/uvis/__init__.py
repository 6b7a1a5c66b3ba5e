"""uvis: unsupervised video instance segmentation.

Raw videos in; every object segmented, tracked and named out, with no human annotation.

The main entry points are importable from here (loaded on first use, so ``import uvis`` stays light)::

    seg = uvis.build_segmenter("runs/ytvis")           # a trained run folder, or "none" (training-free)
    result = seg.segment("clip.mp4")                    # tracks with ids, class names, scores, RLE masks
    result.save_json("results.json"); result.save_overlay("overlay.mp4"); result.save_pngs("masks/")
    for frame in seg.track(frames):                     # any iterable of HxWx3 uint8 frames, one result each
        print(frame.index, frame.track_ids, frame.class_names)

    uvis.evaluate(ground_truth, predictions)            # the 12 YouTube-VIS numbers
    uvis.run_pipeline(uvis.RunConfig(data="videos/", out="runs/x"))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_segmenter": "uvis.track.build",
    "build_predictor": "uvis.predict.build",
    "Predictor": "uvis.predict.base",
    "Vocabulary": "uvis.data.vocabulary",
    "Segmenter": "uvis.track.segmenter",
    "VideoResult": "uvis.track.segmenter",
    "FrameResult": "uvis.track.segmenter",
    "Tracker": "uvis.track.tracker",
    "TrackerConfig": "uvis.track.tracker",
    "evaluate": "uvis.evaluation",
    "RunConfig": "uvis.pipeline",
    "run_pipeline": "uvis.pipeline",
    "open_video": "uvis.data.video",
    "load_dataset": "uvis.data.ytvis",
    "load_results": "uvis.data.ytvis",
    "load_pseudo_labels": "uvis.pseudo.format",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uvis' has no attribute {name!r}")
