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

from uvis.data import masks
from uvis.data.masks import RLE

Segs = Sequence[RLE | None]


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
                r = masks.to_coco(s)
                idx[t].append(i)
                rles[t].append(r)
                flat.append(r)
                where.append((i, t))
    areas = np.zeros((len(tracks), num_frames), dtype=np.int64)
    if flat:
        ii, tt = np.array(where).T
        areas[ii, tt] = masks.areas(flat)
    return idx, rles, areas


def overlaps(
    dts: Sequence[Segs], gts: Sequence[Segs], num_frames: int,
    d_groups: Sequence[int] | None = None, g_groups: Sequence[int] | None = None,
) -> Overlaps:
    """Per-frame areas and summed intersections of the (prediction, ground truth) pairs of a video.

    With group labels (e.g. categories), only pairs within a group are guaranteed to be computed; a
    mask with no same-group partner in its frame is skipped, so other pairs may be left at 0.
    """
    d_idx, d_rles, area_d = _per_frame(dts, num_frames)
    g_idx, g_rles, area_g = _per_frame(gts, num_frames)
    n_g = len(gts)
    ratios: list[np.ndarray] = []
    pairs: list[int] = []
    weights: list[int] = []
    for t in range(num_frames):
        di, gi, dr, gr = d_idx[t], g_idx[t], d_rles[t], g_rles[t]
        if not di or not gi:
            continue
        if d_groups is not None and g_groups is not None:
            in_d, in_g = {d_groups[i] for i in di}, {g_groups[j] for j in gi}
            kd = [n for n, i in enumerate(di) if d_groups[i] in in_g]
            kg = [n for n, j in enumerate(gi) if g_groups[j] in in_d]
            if not kd:
                continue
            if len(kd) < len(di):
                di, dr = [di[n] for n in kd], [dr[n] for n in kd]
            if len(kg) < len(gi):
                gi, gr = [gi[n] for n in kg], [gr[n] for n in kg]
        # With the crowd flag, pycocotools returns |d ∩ g| / |d| (row-major [d, g]): multiply back by |d|.
        ratios.append(masks.iou(dr, gr, crowd=True).ravel())
        pairs.extend(i * n_g + j for i in di for j in gi)
        weights.extend(int(area_d[i, t]) for i in di for _ in gi)
    inter = np.zeros(len(dts) * n_g, dtype=np.int64)
    if pairs:
        ratio = np.concatenate(ratios)
        ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0.0)  # empty masks give NaN
        per_frame = np.rint(ratio * np.asarray(weights, dtype=np.float64))
        # sums of exact integers below 2**53 are exact in float64
        inter = np.bincount(np.asarray(pairs), weights=per_frame, minlength=len(dts) * n_g).astype(np.int64)
    return Overlaps(inter=inter.reshape(len(dts), n_g), area_d=area_d, area_g=area_g)


def track_ious(dts: Sequence[Segs], gts: Sequence[Segs], num_frames: int) -> np.ndarray:
    """Spatio-temporal IoU matrix (len(dts) x len(gts)) for tracks of one video."""
    return overlaps(dts, gts, num_frames).iou()
