"""YouTube-VIS video instance segmentation metrics (AP/AR), numerically identical to the official API.

The rules are those of youtubevos/cocoapi ``ytvoseval.py``; this is an independent, vectorised
implementation. In short:

* predictions and ground truth are grouped per (video, category) (per video when class-agnostic);
  in each group at most ``MAX_DETS[-1]`` highest-scoring predictions count (stable sort on score);
* spatio-temporal IoU (see :mod:`uvis.evaluation.iou`);
* a track's area is the mean of its non-zero per-frame areas (0 if none). Ground truth uses the
  ``areas`` stored in its file when present; predictions use their mask areas;
* crowd ground truth is ignored but may absorb any number of predictions; ground truth outside an
  area range is ignored; unmatched predictions outside the range are ignored;
* greedy matching per IoU threshold in score order, preferring non-ignored ground truth and, among
  equal IoUs, the later ground-truth track;
* 101-point interpolated precision; -1 where a setting has no non-ignored ground truth.

Deviations only where the official code is ill-defined or fails: ground-truth ``id`` values are not
used (the official code mis-scores duplicate or zero ids), a ground truth without ``areas`` gets them
from its masks, an empty prediction list scores 0 (the official ``loadRes`` crashes), and in
class-agnostic mode predictions with a category absent from the ground truth still count (the
official code silently drops them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from uvis.data.ytvis import Dataset, Track
from uvis.errors import UserError
from uvis.evaluation.iou import overlaps

IOU_THRS = np.linspace(0.5, 0.95, 10, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, 101, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RNG = ((0.0, 1e5**2), (0.0, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e5**2))
AREA_LBL = ("all", "small", "medium", "large")
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class EvalResult:
    """The 12 summary numbers (``stats``), AP per category name (``per_class``, empty when
    class-agnostic), and the raw ``precision`` [T,R,K,A,M] and ``recall`` [T,K,A,M] arrays."""

    stats: dict[str, float]
    per_class: dict[str, float]
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)


def _avg_area(areas: list[float | None] | np.ndarray) -> float:
    """Mean of the truthy (present, non-zero) per-frame areas, 0 when there are none."""
    vals = [a for a in areas if a]
    return float(np.asarray(vals, dtype=np.float64).mean()) if vals else 0.0


def _mean_positive(areas: np.ndarray) -> np.ndarray:
    """Row-wise ``_avg_area`` of integer [N, T] areas (exact integer sums give the same doubles)."""
    n = (areas > 0).sum(axis=1)
    return np.where(n > 0, areas.sum(axis=1) / np.maximum(n, 1), 0.0)


@dataclass
class _Group:
    """Ground truth and (score-sorted, truncated) predictions of one (video, category) cell."""

    k: int  # category index (0 when class-agnostic)
    vpos: int  # position of the video in sorted video ids
    gts: list[int]
    dts: list[int]


def _groups(
    gt: Dataset, preds: list[Track], vid_ids: list[int], cat_ids: list[int], class_agnostic: bool
) -> list[_Group]:
    vpos = {v: i for i, v in enumerate(vid_ids)}
    kpos = {c: i for i, c in enumerate(cat_ids)}
    cells: dict[tuple[int, int], tuple[list[int], list[int]]] = {}

    def key(t: Track, is_gt: bool) -> tuple[int, int] | None:
        if t.video_id not in vpos:
            return None
        if class_agnostic and not is_gt:  # any predicted category counts
            return (vpos[t.video_id], 0)
        if t.category_id not in kpos:  # ground truth of unlisted categories never counts (as official)
            return None
        return (vpos[t.video_id], 0 if class_agnostic else kpos[t.category_id])

    # Class-agnostic cells list tracks category by category (ascending id), then in file order.
    def order(tracks: list[Track]) -> list[int]:
        idx = list(range(len(tracks)))
        return sorted(idx, key=lambda i: tracks[i].category_id) if class_agnostic else idx

    for j in order(gt.tracks):
        kk = key(gt.tracks[j], True)
        if kk is not None:
            cells.setdefault(kk, ([], []))[0].append(j)
    for i in order(preds):
        kk = key(preds[i], False)
        if kk is not None:
            cells.setdefault(kk, ([], []))[1].append(i)
    out = []
    for (vp, k), (g, d) in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        scores = np.array([-preds[i].score for i in d], dtype=np.float64)
        d_sorted = [d[i] for i in np.argsort(scores, kind="mergesort")][: MAX_DETS[-1]]
        out.append(_Group(k=k, vpos=vp, gts=g, dts=d_sorted))
    return out


def _validate(gt: Dataset, preds: list[Track]) -> None:
    for i, p in enumerate(preds):
        if not gt.has_video(p.video_id):
            raise UserError(f"prediction {i}: unknown video_id {p.video_id}", fix="predict only ground-truth videos")
        v = gt.video(p.video_id)
        if len(p.segmentations) != v.length:
            raise UserError(
                f"prediction {i}: {len(p.segmentations)} segmentations but video {p.video_id} has {v.length} frames",
                fix="give one segmentation (or None) per frame",
            )
        for t, seg in enumerate(p.segmentations):
            if seg and (int(seg["size"][0]), int(seg["size"][1])) != (v.height, v.width):
                raise UserError(
                    f"prediction {i}, frame {t}: mask size {tuple(seg['size'])} but video {p.video_id} is "
                    f"{(v.height, v.width)} (h, w)",
                    fix="encode masks at the video's resolution",
                )


Matches = list[tuple[np.ndarray, np.ndarray]]


def _match(groups: list[_Group], ious: list[np.ndarray], gt_ig: list[np.ndarray], gt_crowd: list[np.ndarray]) -> Matches:
    """Greedy matching of every group, area range and IoU threshold.

    Returns per group (dt_matched [A,T,D] bool, dt_ignored [A,T,D] bool). Groups with similar
    ground-truth counts are matched together (so padding stays small), see ``_match_batch``.
    """
    out: Matches = [(np.zeros(0), np.zeros(0))] * len(groups)
    buckets: dict[int, list[int]] = {}
    for p, g in enumerate(groups):
        buckets.setdefault(len(g.gts).bit_length(), []).append(p)
    for ps in buckets.values():
        for p, res in zip(ps, _match_batch([groups[p] for p in ps], [ious[p] for p in ps], [gt_ig[p] for p in ps],
                                           [gt_crowd[p] for p in ps]), strict=True):
            out[p] = res
    return out


def _match_batch(
    groups: list[_Group], ious: list[np.ndarray], gt_ig: list[np.ndarray], gt_crowd: list[np.ndarray]
) -> Matches:
    """All given groups, area ranges and thresholds at once, one prediction rank at a time, over padded
    [P,A,T,G] arrays. Per prediction: the best available non-ignored ground truth with IoU >= threshold
    (ties: the later one); only if there is none, the best ignored one (crowd stays available)."""
    A, T = len(AREA_RNG), len(IOU_THRS)
    order = sorted(range(len(groups)), key=lambda p: -len(groups[p].dts))
    P = len(groups)
    G = max([len(g.gts) for g in groups] + [1])
    D = max([len(g.dts) for g in groups] + [0])
    iou = np.full((P, D, G), -np.inf)
    valid = np.zeros((P, G), dtype=bool)
    ig = np.zeros((P, A, G), dtype=bool)
    crowd = np.zeros((P, G), dtype=bool)
    n_dt = np.zeros(P, dtype=np.int64)
    for r, p in enumerate(order):
        nd, ng = ious[p].shape
        n_dt[r] = len(groups[p].dts)
        if ng:
            iou[r, :nd, :ng] = ious[p]
            valid[r, :ng] = True
            ig[r, :, :ng] = gt_ig[p]
            crowd[r, :ng] = gt_crowd[p]
    thr = np.minimum(IOU_THRS, 1 - 1e-10)[None, None, :, None]
    matched = np.zeros((P, A, T, G), dtype=bool)
    dtm = np.zeros((P, A, T, max(D, 1)), dtype=bool)
    dtig = np.zeros((P, A, T, max(D, 1)), dtype=bool)
    rev = np.arange(G)[::-1]
    for d in range(D):
        n = int(np.count_nonzero(n_dt > d))  # groups sorted by size: a prefix has a d-th prediction
        iou_d = iou[:n, d, :][:, None, None, :]
        ok = (valid[:n, None, None, :] & (iou_d >= thr)) & (~matched[:n] | crowd[:n, None, None, :])
        ig_n = ig[:n, :, None, :]
        best = []
        for cand in (ok & ~ig_n, ok & ig_n):
            vals = np.where(cand, iou_d, -np.inf)
            last = rev[np.argmax(vals[..., ::-1], axis=-1)]  # ties go to the later ground truth
            best.append((cand.any(axis=-1), last))
        (has_n, m_n), (has_i, m_i) = best
        has = has_n | has_i
        m = np.where(has_n, m_n, m_i)
        pp, aa, tt = np.nonzero(has)
        mm = m[pp, aa, tt]
        matched[pp, aa, tt, mm] = True
        dtm[pp, aa, tt, d] = True
        dtig[pp, aa, tt, d] = ig[pp, aa, mm]
    out: Matches = [(np.zeros(0), np.zeros(0))] * P
    for r, p in enumerate(order):
        nd = len(groups[p].dts)
        out[p] = (dtm[r, :, :, :nd], dtig[r, :, :, :nd])
    return out


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    def one(ap: bool, iou_thr: float | None = None, area: str = "all", max_dets: int = 100) -> float:
        a = AREA_LBL.index(area)
        m = MAX_DETS.index(max_dets)
        s = precision if ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRS)[0]]
        s = s[..., [a], [m]] if ap else s[:, :, [a], [m]]
        return float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0

    vals = [
        one(True),
        one(True, 0.5),
        one(True, 0.75),
        one(True, area="small"),
        one(True, area="medium"),
        one(True, area="large"),
        one(False, max_dets=1),
        one(False, max_dets=10),
        one(False),
        one(False, area="small"),
        one(False, area="medium"),
        one(False, area="large"),
    ]
    return dict(zip(STAT_KEYS, vals, strict=True))


def evaluate(gt: Dataset, preds: list[Track], *, class_agnostic: bool = False) -> EvalResult:
    """Score predicted tracks against YouTube-VIS ground truth with the official rules.

    ``class_agnostic`` treats every track as one category (the official ``useCats=0``).
    """
    _validate(gt, preds)
    vid_ids = sorted({v.id for v in gt.videos})
    cat_ids = sorted({c.id for c in gt.categories})
    groups = _groups(gt, preds, vid_ids, cat_ids, class_agnostic)

    # IoU per group, computed once per video over all of that video's tracks, with the per-frame areas
    # that give each track's mean area (ground truth: the file's own ``areas`` when it has them).
    gt_avg = np.zeros(len(gt.tracks))
    dt_avg = np.zeros(len(preds))
    by_video: dict[int, list[int]] = {}
    for p, g in enumerate(groups):
        by_video.setdefault(g.vpos, []).append(p)
    ious: list[np.ndarray] = [np.zeros((0, 0))] * len(groups)
    for vp, ps in by_video.items():
        dts = [i for p in ps for i in groups[p].dts]
        gts = [j for p in ps for j in groups[p].gts]
        n_frames = gt.video(vid_ids[vp]).length
        d_groups = [p for p in ps for _ in groups[p].dts]
        g_groups = [p for p in ps for _ in groups[p].gts]
        ov = overlaps([preds[i].segmentations for i in dts], [gt.tracks[j].segmentations for j in gts], n_frames,
                      d_groups, g_groups)
        dt_avg[dts] = _mean_positive(ov.area_d)
        gt_avg[gts] = _mean_positive(ov.area_g)
        for j in gts:
            if gt.tracks[j].areas is not None:
                gt_avg[j] = _avg_area(gt.tracks[j].areas)
        full = ov.iou()
        d0 = g0 = 0
        for p in ps:
            nd, ng = len(groups[p].dts), len(groups[p].gts)
            ious[p] = full[d0 : d0 + nd, g0 : g0 + ng]
            d0, g0 = d0 + nd, g0 + ng
    lo = np.array([r[0] for r in AREA_RNG])
    hi = np.array([r[1] for r in AREA_RNG])

    gt_crowd = [np.array([bool(gt.tracks[j].iscrowd) for j in g.gts], dtype=bool) for g in groups]
    gt_ig = []
    for p, g in enumerate(groups):
        a = gt_avg[g.gts] if g.gts else np.zeros(0)
        out_rng = (a[None, :] < lo[:, None]) | (a[None, :] > hi[:, None])
        gt_ig.append(out_rng | gt_crowd[p][None, :])
    matches = _match(groups, ious, gt_ig, gt_crowd)

    # Accumulate: precision [T,R,K,A,M], recall [T,K,A,M]; -1 where no non-ignored ground truth.
    T, R, A, M = len(IOU_THRS), len(REC_THRS), len(AREA_RNG), len(MAX_DETS)
    K = 1 if class_agnostic else len(cat_ids)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    by_cat: dict[int, list[int]] = {}
    for p, g in enumerate(groups):  # groups are sorted by (category, video)
        by_cat.setdefault(g.k, []).append(p)
    for k, ps in by_cat.items():
        npig = np.zeros(A, dtype=np.int64)
        for p in ps:
            npig += (~gt_ig[p]).sum(axis=1)
        score = np.concatenate([[preds[i].score for i in groups[p].dts] for p in ps] + [np.zeros(0)])
        rank = np.concatenate([np.arange(len(groups[p].dts)) for p in ps] + [np.zeros(0, dtype=np.int64)])
        dtm = np.concatenate([matches[p][0] for p in ps] + [np.zeros((A, T, 0), bool)], axis=2)
        dtig = np.concatenate([matches[p][1] for p in ps] + [np.zeros((A, T, 0), bool)], axis=2)
        dt_area = np.concatenate([dt_avg[groups[p].dts] for p in ps] + [np.zeros(0)])
        for a in range(A):
            if npig[a] == 0:
                continue
            # unmatched predictions outside the area range do not count
            ign = dtig[a] | (~dtm[a] & ((dt_area < lo[a]) | (dt_area > hi[a]))[None, :])
            for m, max_det in enumerate(MAX_DETS):
                keep = rank < max_det
                s = score[keep]
                inds = np.argsort(-s, kind="mergesort")
                tm, ti = dtm[a][:, keep][:, inds], ign[:, keep][:, inds]
                tp = np.cumsum(tm & ~ti, axis=1).astype(np.float64)
                fp = np.cumsum(~tm & ~ti, axis=1).astype(np.float64)
                nd = tp.shape[1]
                if nd == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    continue
                rc = tp / npig[a]
                pr = tp / (fp + tp + np.spacing(1))
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                recall[:, k, a, m] = rc[:, -1]
                for t in range(T):
                    idx = np.searchsorted(rc[t], REC_THRS, side="left")
                    precision[t, :, k, a, m] = np.where(idx < nd, pr[t, np.minimum(idx, nd - 1)], 0.0)

    stats = _summarize(precision, recall)
    per_class: dict[str, float] = {}
    if not class_agnostic:
        names = {c.id: c.name for c in gt.categories}
        seen: dict[str, int] = {}
        for c in cat_ids:
            seen[names[c]] = seen.get(names[c], 0) + 1
        for k, c in enumerate(cat_ids):
            s = precision[:, :, k, 0, -1]
            name = names[c] if seen[names[c]] == 1 else f"{names[c]}#{c}"
            per_class[name] = float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0
    return EvalResult(stats=stats, per_class=per_class, precision=precision, recall=recall)
