"""Spatio-temporal mask IoU between object tracks, as YouTube-VIS defines it.

IoU(d, g) = sum_t |d_t ∩ g_t| / sum_t |d_t ∪ g_t|. A frame where only one track has a mask adds
that mask's area to the union; a frame where neither has one adds nothing; a zero union gives 0.
Because absent and empty masks contribute identically, each track reduces to its per-frame areas
plus the pairwise intersections, which pycocotools computes on RLE without decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask

from uvis.data.masks import RLE

Segs = Sequence[RLE | None]


def _coco(rle: RLE) -> RLE:
    counts = rle["counts"]
    if isinstance(counts, list):
        return coco_mask.frPyObjects(rle, int(rle["size"][0]), int(rle["size"][1]))
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _areas(rles: list[RLE]) -> np.ndarray:
    # pycocotools 2.0.11 + numpy 2 overflows in mask.area for lists longer than 255: call in chunks
    return np.concatenate([np.asarray(coco_mask.area(rles[i : i + 255]), dtype=np.int64) for i in range(0, len(rles), 255)])


@dataclass
class Overlaps:
    """Exact integer pixel counts for the tracks of one video."""

    inter: np.ndarray  # [D, G] sum over frames of |d_t ∩ g_t|
    area_d: np.ndarray  # [D, T] per-frame mask areas, 0 where absent
    area_g: np.ndarray  # [G, T]

    def iou(self) -> np.ndarray:
        """[D, G] spatio-temporal IoU; integer sums make the division match the official loop bit for bit."""
        union = self.area_d.sum(1)[:, None] + self.area_g.sum(1)[None, :] - self.inter
        out = np.zeros(self.inter.shape)
        np.divide(self.inter.astype(np.float64), union.astype(np.float64), out=out, where=union > 0)
        return out


def _per_frame(tracks: Sequence[Segs], num_frames: int) -> tuple[list[list[int]], list[list[RLE]], np.ndarray]:
    """Present (track index, pycocotools RLE) per frame, and the [N, T] area table (one area call)."""
    idx: list[list[int]] = [[] for _ in range(num_frames)]
    rles: list[list[RLE]] = [[] for _ in range(num_frames)]
    flat: list[RLE] = []
    where: list[tuple[int, int]] = []
    for i, segs in enumerate(tracks):
        for t, s in enumerate(segs):
            if s:
                r = _coco(s)
                idx[t].append(i)
                rles[t].append(r)
                flat.append(r)
                where.append((i, t))
    areas = np.zeros((len(tracks), num_frames), dtype=np.int64)
    if flat:
        ii, tt = np.array(where).T
        areas[ii, tt] = _areas(flat)
    return idx, rles, areas


def overlaps(dts: Sequence[Segs], gts: Sequence[Segs], num_frames: int, needed: np.ndarray | None = None) -> Overlaps:
    """Per-frame areas and summed intersections of the (prediction, ground truth) pairs of a video.

    ``needed`` ([D, G] bool, default all) limits the mask work to pairs that will be compared
    (e.g. same category); intersections of other pairs are left at 0.
    """
    d_idx, d_rles, area_d = _per_frame(dts, num_frames)
    g_idx, g_rles, area_g = _per_frame(gts, num_frames)
    inter = np.zeros((len(dts), len(gts)), dtype=np.int64)
    for t in range(num_frames):
        di, gi = d_idx[t], g_idx[t]
        if not di or not gi:
            continue
        if needed is not None:
            sub = needed[np.ix_(di, gi)]
            keep_d, keep_g = sub.any(axis=1), sub.any(axis=0)
            if not keep_d.all() or not keep_g.all():
                d_rles[t] = [r for r, k in zip(d_rles[t], keep_d, strict=True) if k]
                g_rles[t] = [r for r, k in zip(g_rles[t], keep_g, strict=True) if k]
                di = [i for i, k in zip(di, keep_d, strict=True) if k]
                gi = [j for j, k in zip(gi, keep_g, strict=True) if k]
                if not di:
                    continue
        # With the crowd flag, pycocotools returns |d ∩ g| / |d|: multiply back for the exact integer.
        ratio = np.asarray(coco_mask.iou(d_rles[t], g_rles[t], [1] * len(gi)), dtype=np.float64)
        ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio.reshape(len(di), len(gi)), 0.0)  # empty masks: NaN
        inter[np.ix_(di, gi)] += np.rint(ratio * area_d[di, t][:, None]).astype(np.int64)
    return Overlaps(inter=inter, area_d=area_d, area_g=area_g)


def track_ious(dts: Sequence[Segs], gts: Sequence[Segs], num_frames: int) -> np.ndarray:
    """Spatio-temporal IoU matrix (len(dts) x len(gts)) for tracks of one video."""
    return overlaps(dts, gts, num_frames).iou()
