"""DAVIS region similarity J: per-frame mask IoU of the best predicted track for each ground-truth object.

Per frame, J = |P ∩ G| / |P ∪ G|, and a frame where both masks are empty (or absent) scores 1, as in
``db_eval_iou`` of davis2017-evaluation. A track's J is its mean over all frames of the video. Each
ground-truth track is paired with a prediction:

* ``matching="best"`` (default): the prediction with the highest mean J, independently per object (one
  prediction may serve several objects); this measures how well the masks and their linking cover objects.
* ``matching="hungarian"``: a one-to-one assignment maximising the total mean J, as the DAVIS-2017
  unsupervised benchmark does (objects left without a prediction are scored against an empty track).

``mean`` averages over the objects of a video, then over videos; ``object_mean`` averages over all
objects of all videos, the number the DAVIS benchmark reports as J-Mean. Categories and scores are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from uvis.data import masks
from uvis.data.masks import RLE
from uvis.data.ytvis import Dataset, Track
from uvis.errors import UserError


@dataclass
class DavisJResult:
    """per_video: video id -> mean J of its objects; per_object: (video id, GT track id) -> J;
    mean: average of per_video; object_mean: average of per_object (nan when there are no objects)."""

    per_video: dict[int, float]
    per_object: dict[tuple[int, int], float]
    mean: float
    object_mean: float


def frame_j(preds: list[list[RLE | None]], gts: list[list[RLE | None]], num_frames: int) -> np.ndarray:
    """[P, G, T] per-frame J of every prediction against every ground-truth track (both empty -> 1)."""
    out = np.zeros((len(preds), len(gts), num_frames))
    for t in range(num_frames):
        p_idx, p_rle = _present(preds, t)
        g_idx, g_rle = _present(gts, t)
        p_has = np.zeros(len(preds), bool)
        g_has = np.zeros(len(gts), bool)
        p_has[p_idx] = True
        g_has[g_idx] = True
        out[:, :, t] = (~p_has[:, None]) & (~g_has[None, :])  # both empty: 1; exactly one empty: 0
        if p_idx and g_idx:
            out[np.ix_(p_idx, g_idx, [t])] = masks.iou(p_rle, g_rle)[:, :, None]
    return out


def _present(tracks: list[list[RLE | None]], t: int) -> tuple[list[int], list[RLE]]:
    """Tracks with a non-empty mask at frame t (an empty mask counts as absent)."""
    idx, rles = [], []
    for i, segs in enumerate(tracks):
        seg = segs[t]
        if seg is None:
            continue
        rle = masks.to_coco(seg)
        if masks.area(rle) > 0:
            idx.append(i)
            rles.append(rle)
    return idx, rles


def davis_j(gt: Dataset, preds: list[Track], *, matching: Literal["best", "hungarian"] = "best") -> DavisJResult:
    """J of predicted tracks against ground truth, per object, per video and overall."""
    if matching not in ("best", "hungarian"):
        raise ValueError(f"matching must be 'best' or 'hungarian', not {matching!r}")
    by_video: dict[int, list[Track]] = {}
    for i, p in enumerate(preds):
        if not gt.has_video(p.video_id):
            raise UserError(f"prediction {i}: unknown video_id {p.video_id}", fix="predict only ground-truth videos")
        if len(p.segmentations) != gt.video(p.video_id).length:
            raise UserError(f"prediction {i}: {len(p.segmentations)} segmentations but video {p.video_id} has "
                            f"{gt.video(p.video_id).length} frames", fix="give one segmentation (or None) per frame")
        by_video.setdefault(p.video_id, []).append(p)
    per_video: dict[int, float] = {}
    per_object: dict[tuple[int, int], float] = {}
    for video in gt.videos:
        objects = gt.tracks_of(video.id)
        if not objects:
            continue
        n = video.length
        candidates = [p.segmentations for p in by_video.get(video.id, [])]
        # an empty track stands for "no prediction": it still earns 1 on frames where the object is absent
        empty: list[RLE | None] = [None] * n
        if matching == "best":
            mean_j = frame_j([*candidates, empty], [g.segmentations for g in objects], n).mean(axis=2)
            scores = mean_j.max(axis=0)
        else:  # as DAVIS-2017 unsupervised: pad with empty predictions up to the number of objects
            candidates += [empty] * max(0, len(objects) - len(candidates))
            mean_j = frame_j(candidates, [g.segmentations for g in objects], n).mean(axis=2)
            rows, cols = linear_sum_assignment(-mean_j)
            scores = np.zeros(len(objects))
            scores[cols] = mean_j[rows, cols]
        for g, s in zip(objects, scores, strict=True):
            per_object[(video.id, g.id)] = float(s)
        per_video[video.id] = float(np.mean(scores))
    return DavisJResult(
        per_video=per_video,
        per_object=per_object,
        mean=float(np.mean(list(per_video.values()))) if per_video else float("nan"),
        object_mean=float(np.mean(list(per_object.values()))) if per_object else float("nan"),
    )
