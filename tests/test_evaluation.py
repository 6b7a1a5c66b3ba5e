"""YouTube-VIS evaluation: hand-computed cases, a loop-based reference on random inputs, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uvis.cli.main import main
from uvis.data.masks import decode, encode
from uvis.data.ytvis import Category, Dataset, Track, Video, save_results
from uvis.errors import UserError
from uvis.evaluation import STAT_KEYS, evaluate
from uvis.evaluation.iou import track_ious

# pycocotools' decode trips a numpy 2 copy-keyword DeprecationWarning inside the library
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# ----------------------------------------------------------------------------- helpers


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return encode(m)


def video(vid: int, n: int, h: int = 10, w: int = 10) -> Video:
    return Video(id=vid, width=w, height=h, file_names=[f"v{vid}/{t}.jpg" for t in range(n)])


def dataset(videos, tracks, n_cats: int = 2) -> Dataset:
    cats = [Category(id=c, name=f"c{c}") for c in range(1, n_cats + 1)]
    return Dataset(videos=videos, tracks=tracks, categories=cats)


def gt_track(tid, segs, vid=1, cat=1, crowd=0, areas=None) -> Track:
    return Track(video_id=vid, category_id=cat, segmentations=segs, id=tid, iscrowd=crowd, areas=areas)


def pred(segs, score, vid=1, cat=1) -> Track:
    return Track(video_id=vid, category_id=cat, segmentations=segs, score=score)


SQ = rect(10, 10, 2, 6, 2, 6)  # a 4x4 square, area 16
SQ2 = rect(10, 10, 2, 6, 4, 8)  # the same shifted right by 2: overlap 8


# ----------------------------------------------------------------------------- hand-computed cases
# Precision is tp / (tp + fp + eps) as in the official code, so a perfect AP is 1 - 2e-16.


def approx(x):
    return pytest.approx(x, abs=1e-12)



def test_perfect_prediction_scores_one():
    gt = dataset([video(1, 3)], [gt_track(1, [SQ, SQ, None])])
    r = evaluate(gt, [pred([SQ, SQ, None], 0.9)])
    for k in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert r.stats[k] == approx(1.0), k
    for k in ("APm", "APl", "ARm", "ARl"):  # a 16-pixel object is small: no medium/large ground truth
        assert r.stats[k] == -1.0, k
    assert r.per_class == {"c1": approx(1.0), "c2": -1.0}
    assert set(r.stats) == set(STAT_KEYS)


def test_missing_frame_counts_in_union_only():
    # frame 0: both 16 px, identical; frame 1: prediction absent -> union += 16; frame 2: both absent -> nothing
    assert track_ious([[SQ, None, None]], [[SQ, SQ, None]], 3)[0, 0] == 16 / 32
    # prediction present where ground truth is absent: union += 16 as well
    assert track_ious([[SQ, SQ]], [[SQ, None]], 2)[0, 0] == 16 / 32
    # frame 0 overlap 8 (union 24), frame 1 identical (16/16): (8 + 16) / (24 + 16)
    assert track_ious([[SQ2, SQ]], [[SQ, SQ]], 2)[0, 0] == pytest.approx(24 / 40, abs=1e-15)
    # nothing anywhere: 0, not NaN
    assert track_ious([[None]], [[None]], 1)[0, 0] == 0.0

    # IoU exactly 0.5 matches at threshold 0.50 only: AP50 = 1, AP75 = 0, AP = 1/10
    gt = dataset([video(1, 3)], [gt_track(1, [SQ, SQ, None])])
    r = evaluate(gt, [pred([SQ, None, None], 0.9)])
    assert r.stats["AP50"] == approx(1.0) and r.stats["AP75"] == 0.0
    assert r.stats["AP"] == approx(0.1)
    assert r.stats["AR100"] == approx(0.1)


def test_wrong_category_class_aware_vs_agnostic():
    gt = dataset([video(1, 2)], [gt_track(1, [SQ, SQ], cat=1)])
    preds = [pred([SQ, SQ], 0.9, cat=2)]
    aware = evaluate(gt, preds)
    agnostic = evaluate(gt, preds, class_agnostic=True)
    assert aware.stats["AP"] == 0.0 and aware.stats["AR100"] == 0.0
    assert aware.per_class == {"c1": 0.0, "c2": -1.0}  # c2 has no ground truth
    assert agnostic.stats["AP"] == approx(1.0) and agnostic.stats["AR100"] == approx(1.0)
    assert agnostic.per_class == {}


def test_empty_predictions_and_empty_ground_truth():
    gt = dataset([video(1, 2)], [gt_track(1, [SQ, SQ])])
    r = evaluate(gt, [])
    assert r.stats["AP"] == 0.0 and r.stats["AR1"] == 0.0 and r.stats["APs"] == 0.0
    assert r.stats["APl"] == -1.0  # no large ground truth
    r = evaluate(dataset([video(1, 2)], []), [pred([SQ, SQ], 0.5)])
    assert all(v == -1.0 for v in r.stats.values())


def test_area_ranges_use_mean_visible_area_with_inclusive_bounds():
    big = 300
    side128 = rect(big, big, 0, 128, 0, 128)  # exactly 128^2: both small and medium (bounds are inclusive)
    medium = rect(big, big, 0, 200, 0, 200)  # 40000
    large = rect(big, big, 0, 300, 0, 300)  # 90000
    videos = [video(v, 2, big, big) for v in (1, 2, 3)]
    tracks = [
        gt_track(1, [side128, None], vid=1),  # absent frames do not lower the mean
        gt_track(2, [medium, medium], vid=2),
        gt_track(3, [large, None], vid=3),
    ]
    preds = [pred(t.segmentations, 0.9, vid=t.video_id) for t in tracks]
    r = evaluate(dataset(videos, tracks), preds)
    for k in ("AP", "APs", "APm", "APl", "AR100", "ARs", "ARm", "ARl"):
        assert r.stats[k] == approx(1.0), k

    # Two higher-scored false positives, 90000 px and 40000 px, ahead of the true positive (128^2 px):
    # "all" counts both (precision 1/3 at full recall); "medium" counts only the 40000 px one (1/2);
    # in "small" both are unmatched and outside the range, so they are ignored.
    fps = [pred([medium, medium], 0.96, vid=1), pred([large, large], 0.95, vid=1)]
    r = evaluate(dataset(videos[:1], tracks[:1]), [*fps, preds[0]])
    assert r.stats["AP"] == approx(1 / 3)
    assert r.stats["APm"] == approx(0.5)
    assert r.stats["APs"] == approx(1.0)
    assert r.stats["APl"] == -1.0


def test_ground_truth_areas_from_the_file_decide_the_range():
    # masks are 16 px, but the file says 70000 px when visible (0 and None are left out of the mean)
    gt = dataset([video(1, 3)], [gt_track(1, [SQ, SQ, SQ], areas=[70000.0, 0.0, None])])
    r = evaluate(gt, [pred([SQ, SQ, SQ], 0.9)])
    assert r.stats["APl"] == approx(1.0) and r.stats["APs"] == -1.0


def test_max_dets():
    a, b = rect(10, 10, 0, 3, 0, 3), rect(10, 10, 6, 9, 6, 9)
    gt = dataset([video(1, 1)], [gt_track(1, [a]), gt_track(2, [b])])
    r = evaluate(gt, [pred([a], 0.9), pred([b], 0.8)])
    assert r.stats["AR1"] == approx(0.5) and r.stats["AR10"] == approx(1.0) and r.stats["AR100"] == approx(1.0)

    # at most 100 predictions per video and category: a true positive ranked 101st never counts
    fp = rect(10, 10, 4, 5, 4, 5)
    gt = dataset([video(1, 1)], [gt_track(1, [a])])
    r = evaluate(gt, [pred([fp], 0.9) for _ in range(100)] + [pred([a], 0.5)])
    assert r.stats["AR100"] == 0.0 and r.stats["AP"] == 0.0
    r = evaluate(gt, [pred([fp], 0.9) for _ in range(99)] + [pred([a], 0.5)])
    assert r.stats["AR100"] == approx(1.0) and r.stats["AR10"] == 0.0


def test_crowd_ground_truth_absorbs_predictions_and_is_never_counted():
    a, c = rect(10, 10, 0, 3, 0, 3), rect(10, 10, 5, 10, 0, 10)
    preds = [pred([c], 0.9), pred([c], 0.8), pred([a], 0.5)]
    crowd = dataset([video(1, 1)], [gt_track(1, [a]), gt_track(2, [c], crowd=1)])
    assert evaluate(crowd, preds).stats["AP"] == approx(1.0)  # both predictions on the crowd region are ignored
    plain = dataset([video(1, 1)], [gt_track(1, [a]), gt_track(2, [c], crowd=0)])
    # TP (.9), duplicate FP (.8), TP (.5): precision 1, 1/2, 2/3 -> interpolated 1 up to recall .5, then 2/3
    assert evaluate(plain, preds).stats["AP"] == approx((51 * 1 + 50 * 2 / 3) / 101)
    only_crowd = dataset([video(1, 1)], [gt_track(2, [c], crowd=1)])
    assert evaluate(only_crowd, preds).stats["AP"] == -1.0


def test_equal_scores_keep_input_order():
    a, fp = rect(10, 10, 0, 3, 0, 3), rect(10, 10, 6, 9, 6, 9)
    gt = dataset([video(1, 1)], [gt_track(1, [a])])
    assert evaluate(gt, [pred([fp], 0.5), pred([a], 0.5)]).stats["AP"] == approx(0.5)
    assert evaluate(gt, [pred([a], 0.5), pred([fp], 0.5)]).stats["AP"] == approx(1.0)


def test_track_ids_do_not_matter_and_agnostic_mode_accepts_any_category():
    a, b = rect(10, 10, 0, 3, 0, 3), rect(10, 10, 6, 9, 6, 9)
    gt = dataset([video(1, 1)], [gt_track(0, [a]), gt_track(0, [b])])  # duplicate (default) ids
    assert evaluate(gt, [pred([a], 0.9), pred([b], 0.8)]).stats["AR100"] == approx(1.0)
    preds = [pred([a], 0.9, cat=99), pred([b], 0.8, cat=99)]  # e.g. unnamed clusters
    assert evaluate(gt, preds, class_agnostic=True).stats["AP"] == approx(1.0)
    assert evaluate(gt, preds).stats["AP"] == 0.0


def test_evaluate_rejects_predictions_that_do_not_fit_the_video():
    gt = dataset([video(1, 2)], [gt_track(1, [SQ, SQ])])
    with pytest.raises(UserError, match="2 frames"):
        evaluate(gt, [pred([SQ], 0.9)])
    with pytest.raises(UserError, match="mask size"):
        evaluate(gt, [pred([SQ, rect(5, 5, 0, 2, 0, 2)], 0.9)])
    with pytest.raises(UserError, match="unknown video_id"):
        evaluate(gt, [pred([SQ, SQ], 0.9, vid=7)])


# ----------------------------------------------------------------------------- loop-based reference


IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)
AREAS = {"all": (0, 1e10), "small": (0, 128**2), "medium": (128**2, 256**2), "large": (256**2, 1e10)}


def ref_iou(d_segs, g_segs) -> float:
    inter = union = 0
    for d, g in zip(d_segs, g_segs, strict=True):
        dm = decode(d) if d else None
        gm = decode(g) if g else None
        if dm is not None and gm is not None:
            inter += int((dm & gm).sum())
            union += int((dm | gm).sum())
        elif dm is not None:
            union += int(dm.sum())
        elif gm is not None:
            union += int(gm.sum())
    return inter / union if union > 0 else 0.0


def ref_mean_area(areas) -> float:
    visible = [a for a in areas if a]
    return float(np.mean(visible)) if visible else 0.0


def ref_evaluate(gt: Dataset, preds: list[Track], class_agnostic: bool) -> dict[str, float]:
    vids = sorted(v.id for v in gt.videos)
    cats = [-1] if class_agnostic else sorted(c.id for c in gt.categories)
    gt_area = [ref_mean_area(t.areas if t.areas is not None else [int(decode(s).sum()) if s else 0 for s in t.segmentations])
               for t in gt.tracks]
    dt_area = [ref_mean_area([int(decode(s).sum()) if s else 0 for s in p.segmentations]) for p in preds]

    def members(items, vid, cat):
        idx = [i for i in range(len(items)) if items[i].video_id == vid and (cat == -1 or items[i].category_id == cat)]
        if cat == -1:
            idx = sorted(idx, key=lambda i: items[i].category_id)  # category by category, then input order
        return idx

    iou_cache: dict[tuple[int, int], float] = {}
    precision = -np.ones((10, 101, len(cats), 4, 3))
    recall = -np.ones((10, len(cats), 4, 3))
    for k, cat in enumerate(cats):
        for a, (lo, hi) in enumerate(AREAS.values()):
            # per video: match, then collect (score, matched, ignored) in video order
            per_video = []
            n_gt = 0
            for vid in vids:
                g = members(gt.tracks, vid, cat)
                d = members(preds, vid, cat)
                d = sorted(d, key=lambda i: -preds[i].score)[:100]  # sorted() is stable
                ignored = {j: bool(gt.tracks[j].iscrowd) or not (lo <= gt_area[j] <= hi) for j in g}
                n_gt += sum(not ignored[j] for j in g)
                g = [j for j in g if not ignored[j]] + [j for j in g if ignored[j]]
                rows = [(d_rank, i, [None] * len(IOU_THRS)) for d_rank, i in enumerate(d)]  # matched gt per threshold
                for t, thr in enumerate(IOU_THRS):
                    taken = set()
                    for _, i, row in rows:
                        best, best_iou = None, min(thr, 1 - 1e-10)
                        for j in g:
                            if j in taken and not gt.tracks[j].iscrowd:
                                continue
                            if best is not None and not ignored[best] and ignored[j]:
                                break
                            if (i, j) not in iou_cache:
                                iou_cache[i, j] = ref_iou(preds[i].segmentations, gt.tracks[j].segmentations)
                            iou = iou_cache[i, j]
                            if iou >= best_iou:
                                best, best_iou = j, iou
                        if best is not None:
                            taken.add(best)
                        row[t] = best
                entries = []
                for d_rank, i, row in rows:
                    matched = [row[t] is not None for t in range(10)]
                    ign = [
                        (row[t] is not None and ignored[row[t]])
                        or (row[t] is None and not (lo <= dt_area[i] <= hi))
                        for t in range(10)
                    ]
                    entries.append((d_rank, preds[i].score, matched, ign))
                if g or d:
                    per_video.append(entries)
            if n_gt == 0:
                continue
            for m, max_det in enumerate((1, 10, 100)):
                dets = [e for entries in per_video for e in entries if e[0] < max_det]
                dets = sorted(dets, key=lambda e: -e[1])
                for t in range(10):
                    tp = fp = 0
                    rc, pr = [], []
                    for _, _, matched, ign in dets:
                        if ign[t]:
                            rc.append(tp / n_gt)
                            pr.append(tp / (tp + fp + np.spacing(1)))
                            continue
                        tp += matched[t]
                        fp += not matched[t]
                        rc.append(tp / n_gt)
                        pr.append(tp / (tp + fp + np.spacing(1)))
                    recall[t, k, a, m] = rc[-1] if rc else 0.0
                    for r, rthr in enumerate(REC_THRS):
                        first = next((n for n in range(len(rc)) if rc[n] >= rthr), None)
                        precision[t, r, k, a, m] = max(pr[first:]) if first is not None else 0.0

    def mean(s):
        return float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0

    t50, t75 = 0, 5
    out = [
        mean(precision[:, :, :, 0, 2]), mean(precision[t50, :, :, 0, 2]), mean(precision[t75, :, :, 0, 2]),
        mean(precision[:, :, :, 1, 2]), mean(precision[:, :, :, 2, 2]), mean(precision[:, :, :, 3, 2]),
        mean(recall[:, :, 0, 0]), mean(recall[:, :, 0, 1]), mean(recall[:, :, 0, 2]),
        mean(recall[:, :, 1, 2]), mean(recall[:, :, 2, 2]), mean(recall[:, :, 3, 2]),
    ]
    return dict(zip(STAT_KEYS, out, strict=True))


def random_case(seed: int) -> tuple[Dataset, list[Track]]:
    rng = np.random.default_rng(seed)
    n_cats = int(rng.integers(1, 4))
    big = rng.random() < 0.5  # big frames reach the medium and large area ranges
    videos, tracks, preds = [], [], []

    def masks(h, w, n, base=None):
        out = []
        for t in range(n):
            if rng.random() < (0.2 if base is None else 0.1):
                out.append(None)
            elif base is not None and base[t] is not None and rng.random() < 0.85:
                m = decode(base[t])
                if rng.random() < 0.4:
                    shift = int(rng.integers(-h // 8 - 1, h // 8 + 2))
                    m = np.roll(m, shift, axis=int(rng.integers(0, 2)))
                out.append(encode(m))
            else:
                mh, mw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
                y0, x0 = int(rng.integers(0, h - mh + 1)), int(rng.integers(0, w - mw + 1))
                out.append(rect(h, w, y0, y0 + mh, x0, x0 + mw))
        return out

    for v in range(int(rng.integers(1, 4))):
        n = int(rng.integers(1, 4))
        h, w = (int(rng.integers(200, 450)), int(rng.integers(200, 450))) if big else (int(rng.integers(4, 9)),) * 2
        videos.append(video(10 - v, n, h, w))  # ids in descending order: evaluation sorts them
        for _ in range(int(rng.integers(0, 4))):
            segs = masks(h, w, n)
            areas = None
            if rng.random() < 0.3:  # stored areas that differ from the masks: the file's areas decide the range
                areas = [None if s is None else float(rng.integers(0, 150000)) for s in segs]
            tracks.append(gt_track(len(tracks) + 1, segs, vid=10 - v, cat=int(rng.integers(1, n_cats + 1)),
                                   crowd=int(rng.random() < 0.2), areas=areas))
        for _ in range(int(rng.integers(0, 6))):
            mine = [t for t in tracks if t.video_id == 10 - v]
            base = mine[int(rng.integers(len(mine)))].segmentations if mine and rng.random() < 0.7 else None
            preds.append(pred(masks(h, w, n, base), float(np.round(rng.random(), 1)), vid=10 - v,
                              cat=int(rng.integers(1, n_cats + 1))))
    return dataset(videos, tracks, n_cats), preds


@pytest.mark.parametrize("seed", range(60))
def test_matches_loop_reference_on_random_inputs(seed):
    gt, preds = random_case(seed)
    for agnostic in (False, True):
        ours = evaluate(gt, preds, class_agnostic=agnostic).stats
        ref = ref_evaluate(gt, preds, agnostic)
        for k in STAT_KEYS:
            assert ours[k] == pytest.approx(ref[k], abs=1e-9), (k, agnostic)


# ----------------------------------------------------------------------------- CLI


def _files(tmp_path):
    gt = dataset([video(1, 2)], [gt_track(1, [SQ, SQ])])
    gt_path, pred_path = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.save(gt_path)
    save_results(pred_path, [pred([SQ, None], 0.9)])
    return gt_path, pred_path


def test_cli_json_is_the_last_line(tmp_path, capsys):
    gt_path, pred_path = _files(tmp_path)
    assert main(["eval", str(gt_path), str(pred_path), "--json", "--per-class"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    stats = json.loads(out[-1])
    assert list(stats) == list(STAT_KEYS)
    assert stats["AP50"] == approx(1.0) and stats["AP75"] == 0.0 and stats["APl"] == -1.0
    assert any(line.startswith("c1") for line in out)  # per-class table
    assert main(["eval", str(gt_path), str(pred_path), "--class-agnostic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP50"] == approx(1.0)


def test_cli_davis_j(tmp_path, capsys):
    """The prediction covers the object on frame 1 and misses it on frame 2: J = (1 + 0) / 2."""
    gt_path, pred_path = _files(tmp_path)
    assert main(["eval", str(gt_path), str(pred_path), "--davis-j", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    stats = json.loads(out[-1])
    assert stats["J"] == approx(0.5) and stats["J_objects"] == approx(0.5)
    assert any(line.startswith("DAVIS J") for line in out)


@pytest.mark.parametrize(
    "problem",
    ["missing", "not_json", "not_ytvis", "wrong_length", "wrong_size", "unknown_video", "unknown_category"],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, problem):
    gt_path, pred_path = _files(tmp_path)
    good = json.loads(pred_path.read_text())[0]
    bad = {
        "not_json": "{oops",
        "not_ytvis": json.dumps({"images": [], "annotations": []}),
        "wrong_length": json.dumps([{**good, "segmentations": [good["segmentations"][0]]}]),
        "wrong_size": json.dumps([{**good, "segmentations": [rect(5, 5, 0, 2, 0, 2), None]}]),
        "unknown_video": json.dumps([{**good, "video_id": 99}]),
        "unknown_category": json.dumps([{**good, "category_id": 99}]),
    }
    if problem == "missing":
        pred_path = tmp_path / "missing.json"
    elif problem == "not_ytvis":
        gt_path.write_text(bad[problem])
    else:
        pred_path.write_text(bad[problem])
    assert main(["eval", str(gt_path), str(pred_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("uvis eval: error:")
