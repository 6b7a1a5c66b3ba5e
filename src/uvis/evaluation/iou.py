"""Spatio-temporal mask IoU between object tracks, as YouTube-VIS defines it.

IoU(d, g) = sum_t |d_t ∩ g_t| / sum_t |d_t ∪ g_t|. A frame where only one track has a mask adds
that mask's area to the union; a frame where neither has one adds nothing; a zero union gives 0.
Because absent and empty masks contribute identically, each track reduces to its per-frame areas
plus the pairwise intersections, which pycocotools computes on RLE without decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from uvis.data.masks import RLE


def _coco(rle: RLE) -> RLE:
    counts = rle["counts"]
    if isinstance(counts, list):
        return coco_mask.frPyObjects(rle, int(rle["size"][0]), int(rle["size"][1]))
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def frame_areas(segmentations: Sequence[RLE | None]) -> np.ndarray:
    """Pixel area of each frame's mask (0 where absent), as int64."""
    present = [i for i, s in enumerate(segmentations) if s]
    out = np.zeros(len(segmentations), dtype=np.int64)
    if present:
        out[present] = coco_mask.area([_coco(segmentations[i]) for i in present])
    return out


def track_ious(
    dts: Sequence[Sequence[RLE | None]], gts: Sequence[Sequence[RLE | None]], num_frames: int
) -> np.ndarray:
    """Spatio-temporal IoU matrix (len(dts) x len(gts)) for tracks of one video.

    Intersections are summed as exact integers, so the division gives the same double as the
    per-frame Python loop of the official API.
    """
    nd, ng = len(dts), len(gts)
    if nd == 0 or ng == 0:
        return np.zeros((nd, ng))
    area_d = np.array([frame_areas(s).sum() for s in dts], dtype=np.int64)
    area_g = np.array([frame_areas(s).sum() for s in gts], dtype=np.int64)
    inter = np.zeros((nd, ng), dtype=np.int64)
    for t in range(num_frames):
        di = [i for i in range(nd) if dts[i][t]]
        gi = [j for j in range(ng) if gts[j][t]]
        if not di or not gi:
            continue
        d_rles = [_coco(dts[i][t]) for i in di]
        g_rles = [_coco(gts[j][t]) for j in gi]
        # With the crowd flag, pycocotools returns |d ∩ g| / |d|: multiply back for the exact integer.
        ratio = np.asarray(coco_mask.iou(d_rles, g_rles, [1] * len(g_rles)), dtype=np.float64).reshape(len(di), len(gi))
        ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0.0)  # empty masks give NaN boxes
        a_d = np.asarray(coco_mask.area(d_rles), dtype=np.float64)
        inter[np.ix_(di, gi)] += np.rint(ratio * a_d[:, None]).astype(np.int64)
    union = area_d[:, None] + area_g[None, :] - inter
    out = np.zeros((nd, ng))
    np.divide(inter.astype(np.float64), union.astype(np.float64), out=out, where=union > 0)
    return out
