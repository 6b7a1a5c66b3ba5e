"""Cost of checking RLE run lengths while loading a YouTube-VIS results file.

Every mask of a loaded file is checked (runs non-negative, covering exactly h*w pixels), because
pycocotools decodes a too-short RLE into uninitialised memory. This script measures load_results with
that batched check against the same load with it turned off.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_rle_check.py [--videos 30 --tracks 30 --frames 30] [--ragged 0]

Measured on the shared 2-core CPU VM (noisy), best of 3:
- smooth ellipses (--ragged 0), 27000 masks of 720x1280, ~560 characters each: 0.08 s -> 0.50 s (+16 us/mask);
  36000 masks of 360x640 (~330 characters): 0.10 s -> 0.46 s (+10 us/mask);
- ragged borders (--ragged 0.2), 27000 masks of 720x1280, ~5000 characters: 0.36 s -> 3.5 s (+115 us/mask).
That is roughly 20-30 ns per RLE character. In benchmarks/eval_vs_official.py's timing set (54000 masks) it
adds about 0.3 s to loading (uvis load+evaluate 0.5 s -> 0.8-1.0 s; official API 0.8 s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from uvis.data import masks as mask_utils
from uvis.data.ytvis import load_dataset, load_results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=30)
    ap.add_argument("--tracks", type=int, default=30, help="predictions per video")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--ragged", type=float, default=0.2, help="border noise: 0 gives smooth ellipses (few runs)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h, w = args.height, args.width
    yy, xx = np.mgrid[:h, :w]
    pool = []
    for _ in range(40):  # ellipses of many sizes with ragged borders
        cy, cx = rng.integers(h // 8, 7 * h // 8), rng.integers(w // 8, 7 * w // 8)
        ry, rx = rng.integers(10, h // 3), rng.integers(10, w // 4)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1 + args.ragged * rng.random((h, w))
        pool.append(mask_utils.encode(m))
    videos = [{"id": v, "width": w, "height": h, "file_names": [f"{v}/{t}.jpg" for t in range(args.frames)]}
              for v in range(1, args.videos + 1)]
    results = [{"video_id": v["id"], "category_id": 1, "score": 0.5,
                "segmentations": [pool[rng.integers(len(pool))] for _ in range(args.frames)]}
               for v in videos for _ in range(args.tracks)]
    n_masks = len(results) * args.frames
    chars = sum(len(s["counts"]) for r in results for s in r["segmentations"])
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "res.json"
        gt_path.write_text(json.dumps({"videos": videos, "categories": [{"id": 1, "name": "a"}]}))
        res_path.write_text(json.dumps(results))
        gt = load_dataset(gt_path)

        def timed() -> float:
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                load_results(res_path, gt)
                best = min(best, time.perf_counter() - start)
            return best

        with_check = timed()
        with mock.patch.object(mask_utils, "check_many", lambda rles: None):
            without = timed()
    print(f"{n_masks} masks of {h}x{w}, {chars / n_masks:.0f} RLE characters each on average")
    print(f"load_results without the run-length check: {without:.2f} s; with it: {with_check:.2f} s "
          f"(+{(with_check - without) / n_masks * 1e6:.0f} us per mask, best of {args.repeats})")


if __name__ == "__main__":
    main()
