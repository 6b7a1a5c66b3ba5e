"""Check ``uvis.evaluation.evaluate`` against the official YouTube-VIS API and time both.

The official code (youtubevos/cocoapi, ``PythonAPI/pycocotools/{ytvos,ytvoseval}.py``) is not part of
uvis: clone it anywhere and pass ``--official PATH/TO/PythonAPI``. Its two modules are loaded as
submodules of the installed ``pycocotools`` (so ``from . import mask`` uses the installed C masks),
with run-time shims for modern numpy (``np.float``, float ``num`` in ``np.linspace``); the files
themselves are not modified.

    python benchmarks/eval_vs_official.py --official /tmp/cocoapi/PythonAPI
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pycocotools

from uvis.data.masks import decode, encode_many, from_polygons
from uvis.data.ytvis import load_dataset, load_results
from uvis.evaluation import STAT_KEYS, evaluate


def _numpy_shim() -> types.ModuleType:
    """numpy as the 2019 code expects it: ``np.float`` exists and ``linspace`` takes a float count."""
    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    shim.float = float

    def linspace(start, stop, num=50, **kw):
        return np.linspace(start, stop, int(num), **kw)

    shim.linspace = linspace
    return shim


def load_official(python_api: Path) -> tuple[type, type]:
    mods = {}
    for name in ("ytvos", "ytvoseval"):
        path = python_api / "pycocotools" / f"{name}.py"
        if not path.exists():
            sys.exit(f"{path}: not found; pass --official pointing at youtubevos/cocoapi's PythonAPI folder")
        spec = importlib.util.spec_from_file_location(f"{pycocotools.__name__}._official_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.np = _numpy_shim()
        mod.unicode = str
        mods[name] = mod
    return mods["ytvos"].YTVOS, mods["ytvoseval"].YTVOSeval


# ---------------------------------------------------------------- random data


def _blob(rng: np.random.Generator, h: int, w: int, big: bool) -> tuple[float, float, float, float]:
    """A random ellipse (cy, cx, ry, rx), sometimes large enough for the medium/large area ranges."""
    scale = rng.uniform(0.3, 0.9) if big else rng.uniform(0.03, 0.3)
    return rng.uniform(0, h), rng.uniform(0, w), max(1.0, scale * h / 2), max(1.0, scale * w / 2)


def _draw(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _track_masks(rng, h, w, n_frames, p_absent, base=None):
    """Masks of one track: an ellipse drifting through the video, absent in some frames. With ``base``
    (a ground-truth track) a noisy copy of it: shifted, some frames dropped, others replaced."""
    out = []
    cy, cx, ry, rx = _blob(rng, h, w, rng.random() < 0.4)
    vy, vx = rng.normal(0, 0.02 * h), rng.normal(0, 0.02 * w)
    dy, dx = rng.integers(-3, 4, size=2) * (rng.random() < 0.7)  # a third of copies are exact where present
    for t in range(n_frames):
        if rng.random() < p_absent:
            out.append(None)
        elif base is not None and base[t] is not None and rng.random() < 0.95:
            out.append(np.roll(base[t], (int(dy), int(dx)), axis=(0, 1)))
        else:
            out.append(_draw(h, w, cy + vy * t, cx + vx * t, ry, rx))
    return out


def _rles(masks):
    present = [i for i, m in enumerate(masks) if m is not None]
    enc = encode_many(np.stack([masks[i] for i in present])) if present else []
    out = [None] * len(masks)
    for i, r in zip(present, enc, strict=True):
        out[i] = r
    return out


def _uncompressed(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (counts as a list, column-major, starting with a run of zeros)."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": [int(c) for c in counts]}


def _rect_polygon(rng, h: int, w: int) -> list[list[float]]:
    y0, x0 = float(rng.integers(0, h - 2)), float(rng.integers(0, w - 2))
    y1, x1 = float(rng.integers(y0 + 2, h + 1)), float(rng.integers(x0 + 2, w + 1))
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def make_case(seed: int, n_videos: int, n_frames: int, n_cats: int, gt_per_video: int, dt_per_video: int,
              size: tuple[int, int], p_crowd: float = 0.1, p_absent: float = 0.15, odd_areas: bool = False,
              exact_counts: bool = False, formats: bool = False, p_empty: float = 0.0):
    """Random ground truth and results JSON objects (scores with ties, wrong categories, crowd, gaps).

    ``formats``: ground-truth frames also as uncompressed RLE and polygons; ``p_empty``: share of
    present masks that are empty (all zero), in ground truth and predictions."""
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    cats = [{"id": int(c), "name": f"cat{c}", "supercategory": ""} for c in rng.permutation(np.arange(1, n_cats + 1))]
    ann_id = 1
    for v in range(n_videos):
        vid = int(v * 3 + 7)
        h = int(rng.integers(size[0] // 2, size[0] + 1))
        w = int(rng.integers(size[1] // 2, size[1] + 1))
        videos.append({"id": vid, "width": w, "height": h, "length": n_frames,
                       "file_names": [f"v{vid}/{t:05d}.jpg" for t in range(n_frames)]})
        gts = []
        for _ in range(gt_per_video if exact_counts else int(rng.integers(0, gt_per_video + 1))):
            masks = _track_masks(rng, h, w, n_frames, p_absent)
            masks = [m if m is None or rng.random() >= p_empty else np.zeros_like(m) for m in masks]
            polys = [None] * n_frames
            if formats:
                for t in range(n_frames):
                    if masks[t] is not None and rng.random() < 0.15:
                        polys[t] = _rect_polygon(rng, h, w)
                        masks[t] = decode(from_polygons(polys[t], h, w))
            cat = int(rng.integers(1, n_cats + 1))
            gts.append((masks, cat))
            segs = _rles(masks)
            if formats:
                for t in range(n_frames):
                    if polys[t] is not None:
                        segs[t] = polys[t]
                    elif masks[t] is not None and rng.random() < 0.2:
                        segs[t] = _uncompressed(masks[t])
            areas = [None if m is None else int(m.sum()) for m in masks]
            if odd_areas:  # areas stored in the file need not match the masks; the file wins
                areas = [None if a is None else a * int(rng.integers(1, 40)) for a in areas]
            anns.append({"id": ann_id, "video_id": vid, "category_id": cat, "iscrowd": int(rng.random() < p_crowd),
                         "segmentations": segs, "areas": areas, "bboxes": [None] * n_frames})
            ann_id += 1
        for _ in range(dt_per_video if exact_counts else int(rng.integers(0, dt_per_video + 1))):
            if gts and rng.random() < 0.8:
                base, cat = gts[int(rng.integers(len(gts)))]
                if rng.random() < 0.1:
                    cat = int(rng.integers(1, n_cats + 1))
            else:
                base, cat = None, int(rng.integers(1, n_cats + 1))
            masks = _track_masks(rng, h, w, n_frames, p_absent, base)
            masks = [m if m is None or rng.random() >= p_empty else np.zeros_like(m) for m in masks]
            score = float(np.round(rng.random(), 1))  # coarse scores: many ties test the sort order
            results.append({"video_id": vid, "category_id": cat, "score": score, "segmentations": _rles(masks)})
    rng.shuffle(videos)  # file order of videos, annotations and results must not matter beyond tie-breaking
    rng.shuffle(anns)
    rng.shuffle(results)
    gt = {"info": {}, "videos": videos, "categories": cats, "annotations": anns}
    return gt, results


def davis_case(root: Path, seed: int, every: int = 1):
    """Real masks: DAVIS ground truth (one object per sequence, every ``every``-th frame) and predictions
    made from it: exact, shifted, dilated, with dropped frames, and another sequence's masks."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    seqs = sorted(p.name for p in (root / "Annotations" / "480p").iterdir() if p.is_dir())
    masks = {}
    for name in seqs:
        files = sorted((root / "Annotations" / "480p" / name).glob("*.png"))[::every]
        masks[name] = [np.asarray(Image.open(f).convert("L")) > 0 for f in files]
    n = min(len(m) for m in masks.values())
    videos, anns, results = [], [], []
    for v, name in enumerate(seqs):
        ms = masks[name][:n]
        h, w = ms[0].shape
        vid = v + 1
        videos.append({"id": vid, "width": w, "height": h, "length": n, "file_names": [f"{name}/{t:05d}.jpg" for t in range(n)]})
        segs = _rles(ms)
        anns.append({"id": vid, "video_id": vid, "category_id": 1, "iscrowd": 0, "segmentations": segs,
                     "areas": [int(m.sum()) for m in ms], "bboxes": [None] * n})
        variants = [
            ms,
            [np.roll(m, int(rng.integers(2, 12)), axis=1) for m in ms],
            [m | np.roll(m, 6, axis=0) | np.roll(m, 6, axis=1) for m in ms],
            [None if rng.random() < 0.3 else m for m in ms],
            masks[seqs[(v + 1) % len(seqs)]][:n],
        ]
        for var in variants:
            results.append({"video_id": vid, "category_id": 1, "score": float(np.round(rng.random(), 2)),
                            "segmentations": _rles(var)})
    gt = {"info": {}, "videos": videos, "categories": [{"id": 1, "name": "object", "supercategory": ""}],
          "annotations": anns}
    return gt, results


# ---------------------------------------------------------------- runs


def run_official(YTVOS, YTVOSeval, gt_path: Path, res_path: Path, class_agnostic: bool):
    """The 12 stats, and (wall, CPU) seconds spent after loading (evaluate + accumulate + summarize)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = YTVOS(str(gt_path))
        dt = gt.loadRes(str(res_path))
        t0, c0 = time.perf_counter(), time.process_time()
        ev = YTVOSeval(gt, dt, "segm")
        if class_agnostic:
            ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64), (time.perf_counter() - t0, time.process_time() - c0)


def run_ours(gt_path: Path, res_path: Path, class_agnostic: bool):
    gt = load_dataset(gt_path)
    preds = load_results(res_path, gt)
    t0, c0 = time.perf_counter(), time.process_time()
    stats = evaluate(gt, preds, class_agnostic=class_agnostic).stats
    return np.array([stats[k] for k in STAT_KEYS], dtype=np.float64), (time.perf_counter() - t0, time.process_time() - c0)


CASES = [  # (seeds, n_videos, n_frames, n_cats, gt/video, dt/video, (h, w), extra)
    (range(0, 12), 4, 3, 2, 3, 4, (40, 50), {}),
    (range(12, 22), 8, 5, 5, 4, 8, (200, 300), {}),
    (range(22, 28), 6, 4, 3, 3, 6, (360, 480), {"p_crowd": 0.3, "p_absent": 0.4}),
    (range(28, 32), 10, 6, 20, 5, 12, (300, 400), {"odd_areas": True}),
    (range(32, 36), 5, 3, 1, 3, 140, (60, 80), {}),  # > 100 predictions per video and category
    (range(36, 44), 6, 4, 3, 4, 8, (120, 160), {"formats": True, "p_empty": 0.2, "p_crowd": 0.3}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True, help="youtubevos/cocoapi PythonAPI folder")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (median reported)")
    ap.add_argument("--bench-videos", type=int, default=100)
    ap.add_argument("--bench-frames", type=int, default=36)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--davis", type=Path, default=None,
                    help="also compare on real DAVIS masks (folder with Annotations/480p/<seq>/*.png)")
    args = ap.parse_args()
    YTVOS, YTVOSeval = load_official(args.official)
    worst, n_checked = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seeds, nv, nf, nc, ng, nd, size, extra in CASES:
            for seed in seeds:
                gt, res = make_case(seed, nv, nf, nc, ng, nd, size, **extra)
                if not res:
                    continue  # the official loadRes cannot read an empty result list
                gp, rp = tmp / f"gt{seed}.json", tmp / f"res{seed}.json"
                gp.write_text(json.dumps(gt))
                rp.write_text(json.dumps(res))
                # what uvis segment writes: each result also names its video and track_id, which both ignore
                linked = tmp / f"res{seed}_linked.json"
                linked.write_text(json.dumps([{**r, "video": f"video {r['video_id']}", "track_id": k + 1}
                                              for k, r in enumerate(res)]))
                for agn in (False, True):
                    a, _ = run_official(YTVOS, YTVOSeval, gp, rp, agn)
                    b, _ = run_ours(gp, rp, agn)
                    a2, b2 = run_official(YTVOS, YTVOSeval, gp, linked, agn)[0], run_ours(gp, linked, agn)[0]
                    if not (np.array_equal(a2, a) and np.array_equal(b2, b)):
                        print(f"the video/track_id fields changed the stats: seed={seed} class_agnostic={agn}")
                        return 1
                    diff = float(np.max(np.abs(a - b)))
                    worst = max(worst, diff)
                    n_checked += 1
                    if diff > 1e-9:
                        print(f"MISMATCH seed={seed} class_agnostic={agn}\n official={a}\n ours    ={b}")
                        return 1
        if args.davis is not None:
            gt, res = davis_case(args.davis, seed=0)
            gp, rp = tmp / "davis_gt.json", tmp / "davis_res.json"
            gp.write_text(json.dumps(gt))
            rp.write_text(json.dumps(res))
            for agn in (False, True):
                t0 = time.perf_counter()
                a, _ = run_official(YTVOS, YTVOSeval, gp, rp, agn)
                t1 = time.perf_counter()
                b, _ = run_ours(gp, rp, agn)
                t2 = time.perf_counter()
                diff = float(np.max(np.abs(a - b)))
                worst = max(worst, diff)
                n_checked += 1
                print(f"DAVIS real masks ({len(gt['videos'])} videos x {gt['videos'][0]['length']} frames, "
                      f"{len(res)} predictions, class_agnostic={agn}): max |diff| = {diff:.3g}, AP={b[0]:.4f}, "
                      f"official {t1 - t0:.2f} s, uvis {t2 - t1:.2f} s")
                if diff > 1e-9:
                    print(f"MISMATCH on DAVIS\n official={a}\n ours    ={b}")
                    return 1
        print(f"equivalence: {n_checked} runs ((random cases + DAVIS when given) x class-aware/agnostic), max |diff| = {worst:.3g}; "
              "the random cases' stats unchanged, in both, with the video and track_id fields of uvis segment added")
        if args.skip_timing:
            return 0
        gt, res = make_case(1000, args.bench_videos, args.bench_frames, 40, 5, 10, (360, 640), exact_counts=True)
        gp, rp = tmp / "bench_gt.json", tmp / "bench_res.json"
        gp.write_text(json.dumps(gt))
        rp.write_text(json.dumps(res))
        n_tracks = len(gt["annotations"])
        print(f"timing: {args.bench_videos} videos x {args.bench_frames} frames (360x640 max), "
              f"{n_tracks} GT tracks, {len(res)} predictions, 40 categories; median of {args.repeats}")
        for agn in (False, True):
            t_off, t_ours, e_off, e_ours = [], [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                a, e = run_official(YTVOS, YTVOSeval, gp, rp, agn)
                t_off.append(time.perf_counter() - t0)
                e_off.append(e)
                t0 = time.perf_counter()
                b, e = run_ours(gp, rp, agn)
                t_ours.append(time.perf_counter() - t0)
                e_ours.append(e)
            diff = float(np.max(np.abs(a - b)))
            mo, mu = statistics.median(t_off), statistics.median(t_ours)
            (wo, co), (wu, cu) = (tuple(statistics.median(x) for x in zip(*e, strict=True)) for e in (e_off, e_ours))
            print(f"  class_agnostic={agn}: load+evaluate wall: official {mo:.2f} s, uvis {mu:.2f} s (x{mo / mu:.1f}); "
                  f"evaluate only wall: official {wo:.2f} s, uvis {wu:.2f} s (x{wo / wu:.1f}); "
                  f"evaluate only CPU: official {co:.2f} s, uvis {cu:.2f} s (x{co / cu:.1f}); "
                  f"max |diff| = {diff:.3g}, AP={b[0]:.4f}")
            if diff > 1e-9:
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
