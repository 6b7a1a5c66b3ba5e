"""Property-based tests: RLE masks and the YouTube-VIS evaluator on random data.

Evaluator properties are only those the COCO/YouTube-VIS rules guarantee:
* perfect predictions (every ground-truth track, any scores) give AP 1 in every defined setting,
  also class-agnostic;
* with distinct scores, the order of the predictions in the list changes nothing;
* multiplying all scores by a positive constant (order preserved, still distinct) changes nothing;
* a prediction that overlaps no ground truth, scored below every other prediction, lands last in its
  category's ranking: precision/recall at every earlier rank stay the same and the interpolated
  precision envelope cannot rise, so all 12 numbers stay exactly as they were.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from uvis.data import masks as mask_utils
from uvis.data.ytvis import Category, Dataset, Track, Video
from uvis.evaluation import STAT_KEYS, evaluate

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- RLE -------------------------------------------------------------------------------------------------


@st.composite
def bool_masks(draw, max_side: int = 24) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(["random", "empty", "full", "blob"]))
    if kind == "empty":
        return np.zeros((h, w), bool)
    if kind == "full":
        return np.ones((h, w), bool)
    if kind == "blob":
        m = np.zeros((h, w), bool)
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        m[y0 : draw(st.integers(y0 + 1, h)), x0 : draw(st.integers(x0 + 1, w))] = True
        return m
    return draw(hnp.arrays(bool, (h, w)))


def _runs(mask: np.ndarray) -> list[int]:
    """COCO run lengths by hand: column-major pixels, alternating runs starting with zeros."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


@FAST
@given(bool_masks())
def test_rle_round_trip_area_bbox(mask):
    rle = mask_utils.encode(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    back = mask_utils.decode(rle)
    assert back.dtype == bool and np.array_equal(back, mask)
    assert mask_utils.area(rle) == int(mask.sum())
    ys, xs = np.nonzero(mask)
    expected = [0.0, 0.0, 0.0, 0.0] if not len(xs) else [
        float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    assert mask_utils.bbox(rle) == expected
    assert mask_utils.run_lengths(rle["counts"]).tolist() == _runs(mask)


def _to_string(runs: list[int]) -> str:
    """COCO's compressed counts for any run list (also invalid ones), written independently of pycocotools."""
    out = []
    for i, value in enumerate(runs):
        x = value - runs[i - 2] if i > 2 else value
        while True:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(48 + (c | 0x20 if more else c)))
            if not more:
                break
    return "".join(out)


@st.composite
def rle_batches(draw):
    """Lists of RLEs, some with corrupted runs (a run changed, dropped, added or made negative)."""
    out, valid = [], []
    for _ in range(draw(st.integers(1, 8))):
        mask = draw(bool_masks(max_side=12))
        runs = _runs(mask)
        fault = draw(st.sampled_from(["none", "none", "none", "grow", "shrink", "drop", "extra", "negative"]))
        if fault == "grow":
            runs[draw(st.integers(0, len(runs) - 1))] += draw(st.integers(1, 50))
        elif fault == "shrink" and max(runs) > 0:
            i = next(i for i, r in enumerate(runs) if r > 0)
            runs[i] -= 1
        elif fault == "drop" and len(runs) > 1:
            runs = runs[:-1]
        elif fault == "extra":
            runs = [*runs, draw(st.integers(1, 40))]
        elif fault == "negative":  # same total, but one run below zero
            runs = [*runs, -3, 3]
        ok = sum(runs) == mask.size and min(runs) >= 0
        out.append({"size": list(mask.shape), "counts": _to_string(runs)})
        valid.append(ok)
    return out, valid


@FAST
@given(bool_masks())
def test_independent_string_encoder_matches_pycocotools(mask):
    assert _to_string(_runs(mask)) == mask_utils.encode(mask)["counts"]


@settings(max_examples=50, deadline=None)
@given(rle_batches())
def test_check_many_finds_the_first_bad_rle(batch):
    rles, valid = batch
    expected = next((i for i, ok in enumerate(valid) if not ok), None)
    assert mask_utils.check_many(rles) == expected
    chunk = mask_utils._CHUNK_CHARS
    try:  # many small vectorised passes give the same answer
        mask_utils._CHUNK_CHARS = 7
        assert mask_utils.check_many(rles) == expected
    finally:
        mask_utils._CHUNK_CHARS = chunk
    for rle, ok in zip(rles, valid, strict=True):
        if ok:
            mask_utils.check(rle)
        else:
            with pytest.raises(ValueError):
                mask_utils.check(rle)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (41, 1), (2, 3)])
@pytest.mark.parametrize("fill", [False, True])
def test_rle_round_trip_empty_full_thin(shape, fill):
    mask = np.full(shape, fill)
    rle = mask_utils.encode(mask)
    assert np.array_equal(mask_utils.decode(rle), mask) and mask_utils.area(rle) == mask.sum()


@FAST
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 5), st.randoms(use_true_random=False))
def test_encode_many_equals_encode(h, w, n, rnd):
    rng = np.random.default_rng(rnd.randrange(2**32))
    stack = rng.random((n, h, w)) < rng.random()
    assert mask_utils.encode_many(stack) == [mask_utils.encode(m) for m in stack]


@FAST
@given(st.lists(bool_masks(max_side=16), min_size=1, max_size=4), st.integers(1, 16), st.integers(1, 16))
def test_encode_tensor_equals_pycocotools(masks, h, w):
    """The device-side encoder (run boundaries by torch, used for MaskCut on GPUs) gives pycocotools' RLEs."""
    import torch

    stack = np.stack([np.resize(m, (h, w)) for m in masks])
    assert mask_utils.encode_tensor(torch.from_numpy(stack)) == mask_utils.encode_many(stack)


@FAST
@given(bool_masks(), st.sampled_from(["compressed", "uncompressed", "bytes"]))
def test_normalize_is_idempotent_and_keeps_the_mask(mask, form):
    h, w = mask.shape
    rle = mask_utils.encode(mask)
    if form == "uncompressed":
        seg = {"size": [h, w], "counts": _runs(mask)}
    elif form == "bytes":
        seg = {"size": [h, w], "counts": rle["counts"].encode("ascii")}
    else:
        seg = rle
    once = mask_utils.normalize(seg, h, w)
    assert once == rle
    assert mask_utils.normalize(once, h, w) == once
    assert np.array_equal(mask_utils.decode(once), mask)


@FAST
@given(st.integers(1, 30), st.integers(1, 30), st.lists(st.floats(0, 40, allow_nan=False), min_size=6, max_size=12))
def test_normalize_polygons_is_idempotent(h, w, coords):
    coords = coords[: len(coords) - len(coords) % 2]
    once = mask_utils.normalize([coords], h, w)
    assert once["size"] == [h, w]
    assert mask_utils.normalize(once, h, w) == once


# --- evaluator ---------------------------------------------------------------------------------------


H, W = 10, 12


def _random_mask(rng: np.random.Generator) -> np.ndarray:
    m = np.zeros((H, W), bool)
    y0, x0 = rng.integers(0, H - 1), rng.integers(0, W - 1)
    m[y0 : y0 + rng.integers(1, H - y0 + 1), x0 : x0 + rng.integers(1, W - x0 + 1)] = True
    if rng.random() < 0.3:
        m ^= rng.random((H, W)) < 0.1
    return m


def _random_track(rng, video_id: int, n_frames: int, category_id: int, *, nonempty: bool = True) -> Track:
    segs = [mask_utils.encode(_random_mask(rng)) if rng.random() < 0.8 else None for _ in range(n_frames)]
    if nonempty and all(s is None or mask_utils.area(s) == 0 for s in segs):
        segs[int(rng.integers(n_frames))] = mask_utils.encode(_random_mask(rng))
    return Track(video_id=video_id, category_id=category_id, segmentations=segs)


def _random_gt(seed: int) -> Dataset:
    """1-3 videos of 1-4 frames, 1-3 categories, 1-4 object tracks per video, each visible somewhere."""
    rng = np.random.default_rng(seed)
    n_cat = int(rng.integers(1, 4))
    videos, tracks = [], []
    for vid in range(1, int(rng.integers(1, 4)) + 1):
        n = int(rng.integers(1, 5))
        videos.append(Video(id=vid, width=W, height=H, file_names=[f"v{vid}/{t}.jpg" for t in range(n)]))
        for _ in range(int(rng.integers(1, 5))):
            tracks.append(_random_track(rng, vid, n, int(rng.integers(1, n_cat + 1))))
    for i, t in enumerate(tracks, start=1):
        t.id = i
    return Dataset(videos=videos, tracks=tracks, categories=[Category(id=c, name=f"c{c}") for c in range(1, n_cat + 1)])


def _noisy_predictions(gt: Dataset, seed: int) -> list[Track]:
    """A mix of near-copies of ground truth (some mislabelled) and random tracks, with distinct scores."""
    rng = np.random.default_rng(seed)
    preds = []
    n_cat = len(gt.categories)
    for t in gt.tracks:
        if rng.random() < 0.7:
            segs = []
            for s in t.segmentations:
                if s is None or rng.random() < 0.1:
                    segs.append(None if rng.random() < 0.7 else mask_utils.encode(_random_mask(rng)))
                else:
                    m = mask_utils.decode(s) ^ (rng.random((H, W)) < rng.choice([0.0, 0.0, 0.03, 0.15]))
                    segs.append(mask_utils.encode(m))
            cid = t.category_id if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
            preds.append(Track(video_id=t.video_id, category_id=cid, segmentations=segs))
    for v in gt.videos:
        for _ in range(int(rng.integers(0, 3))):
            preds.append(_random_track(rng, v.id, v.length, int(rng.integers(1, n_cat + 1)), nonempty=False))
    scores = rng.permutation(len(preds)) + 1.0
    for p, s in zip(preds, scores, strict=True):
        p.score = float(s) / (len(preds) + 1)
    return preds


def _perfect(gt: Dataset, seed: int) -> list[Track]:
    rng = np.random.default_rng(seed)
    return [Track(video_id=t.video_id, category_id=t.category_id, segmentations=list(t.segmentations),
                  score=float(rng.random())) for t in gt.tracks]


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(a[k] == b[k] for k in STAT_KEYS)


seeds = st.integers(0, 2**32 - 1)
EVAL = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EVAL
@given(seeds, seeds)
def test_perfect_predictions_score_one(gt_seed, score_seed):
    gt = _random_gt(gt_seed)
    preds = _perfect(gt, score_seed)
    for agnostic in (False, True):
        stats = evaluate(gt, preds, class_agnostic=agnostic).stats
        for key in ("AP", "AP50", "AP75", "AR100", "AR10", "APs", "ARs"):
            assert stats[key] == pytest.approx(1.0), (key, agnostic, stats)
        for key in ("APm", "APl", "ARm", "ARl"):  # every object is small (< 128^2 pixels): undefined
            assert stats[key] == -1.0
    per_class = evaluate(gt, preds).per_class
    present = {c.name for c in gt.categories if any(t.category_id == c.id for t in gt.tracks)}
    for name, ap in per_class.items():
        assert ap == (pytest.approx(1.0) if name in present else -1.0)


@EVAL
@given(seeds, seeds, st.randoms(use_true_random=False), st.booleans())
def test_prediction_order_does_not_matter(gt_seed, pred_seed, rnd, agnostic):
    gt = _random_gt(gt_seed)
    preds = _noisy_predictions(gt, pred_seed)
    shuffled = list(preds)
    rnd.shuffle(shuffled)
    a = evaluate(gt, preds, class_agnostic=agnostic)
    b = evaluate(gt, shuffled, class_agnostic=agnostic)
    assert _same(a.stats, b.stats) and a.per_class == b.per_class


@EVAL
@given(seeds, seeds, st.floats(1e-3, 1e3), st.booleans())
def test_scaling_scores_changes_nothing(gt_seed, pred_seed, factor, agnostic):
    gt = _random_gt(gt_seed)
    preds = _noisy_predictions(gt, pred_seed)
    scaled = [Track(p.video_id, p.category_id, p.segmentations, score=p.score * factor) for p in preds]
    order = np.argsort([-p.score for p in preds], kind="stable")
    assume(np.array_equal(order, np.argsort([-p.score for p in scaled], kind="stable")))
    assume(len({p.score for p in scaled}) == len(scaled))
    assert _same(evaluate(gt, preds, class_agnostic=agnostic).stats, evaluate(gt, scaled, class_agnostic=agnostic).stats)


@EVAL
@given(seeds, seeds, st.booleans(), st.booleans())
def test_lowest_scored_false_positive_changes_nothing(gt_seed, pred_seed, agnostic, empty):
    gt = _random_gt(gt_seed)
    preds = _noisy_predictions(gt, pred_seed)
    rng = np.random.default_rng(pred_seed)
    video = gt.videos[int(rng.integers(len(gt.videos)))]
    # a track on pixels no ground-truth object of this video ever covers (or no pixels at all): IoU 0 with all
    covered = np.zeros((H, W), bool)
    for t in gt.tracks_of(video.id):
        for s in t.segmentations:
            if s is not None:
                covered |= mask_utils.decode(s)
    free = ~covered
    seg = None if empty or not free.any() else mask_utils.encode(free)
    ghost = Track(video_id=video.id, category_id=int(rng.integers(1, len(gt.categories) + 1)),
                  segmentations=[seg] * video.length,
                  score=min([p.score for p in preds], default=1.0) / 2)
    before = evaluate(gt, preds, class_agnostic=agnostic).stats
    after = evaluate(gt, [*preds, ghost], class_agnostic=agnostic).stats
    assert _same(before, after), (before, after)


@EVAL
@given(seeds, seeds)
def test_no_predictions_score_zero_and_ap_is_bounded(gt_seed, pred_seed):
    gt = _random_gt(gt_seed)
    assert evaluate(gt, []).stats["AP"] == 0.0
    stats = evaluate(gt, _noisy_predictions(gt, pred_seed)).stats
    for key in STAT_KEYS:
        assert stats[key] == -1.0 or 0.0 <= stats[key] <= 1.0
