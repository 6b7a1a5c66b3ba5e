"""Speed of the data layer: synthetic rendering, dataset writing, DAVIS import, overlays.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_data.py [--davis ../shared/data/davis2016]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _time(label: str, fn, repeat: int = 1) -> float:  # noqa: ANN001
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    per = (time.perf_counter() - start) / repeat
    print(f"{label:55s} {per * 1000:9.1f} ms")
    return per


def main() -> None:
    from uvis.data.davis import load_davis
    from uvis.data.overlay import draw_overlay
    from uvis.data.synthetic import make_dataset, render_video

    parser = argparse.ArgumentParser()
    default_davis = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis2016"
    parser.add_argument("--davis", type=Path, default=default_davis)
    args = parser.parse_args()

    _time("render_video 8 frames 64x96, 3 objects", lambda: render_video(seed=1), repeat=20)
    _time("render_video 16 frames 240x320, 5 objects",
          lambda: render_video(16, 240, 320, 5, seed=1), repeat=3)
    with tempfile.TemporaryDirectory() as tmp:
        _time("make_dataset 10 videos x 8 frames 64x96 (PNG)", lambda: make_dataset(tmp, num_videos=10))
    v = render_video(1, 480, 854, 5, seed=2)
    labels = [f"{i + 1} {n} 0.90" for i, n in enumerate(v.class_names())]
    _time("draw_overlay 854x480, 5 masks + labels",
          lambda: draw_overlay(v.frames[0], v.masks[:, 0], [1, 2, 3, 4, 5], labels), repeat=5)
    if (args.davis / "JPEGImages" / "480p").is_dir():
        per = _time(f"load_davis {args.davis}", lambda: load_davis(args.davis))
        ds = load_davis(args.davis)
        frames = sum(v.length for v in ds.videos)
        print(f"  {len(ds.videos)} sequences, {frames} frames: {per / frames * 1000:.2f} ms per frame")
    else:
        print(f"(no DAVIS folder at {args.davis}; skipped)")


if __name__ == "__main__":
    main()
