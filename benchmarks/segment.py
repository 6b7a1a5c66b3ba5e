"""Throughput of stage 3 (tracking + mask encoding + output I/O) at 360p.

A fake frame predictor isolates what stage 3 itself costs: it returns, per frame, ``--objects``
moving disc masks with stable noisy embeddings (score 0.9) and ``--queries - objects`` low-score
candidates, as a Mask2Former-style model's post-processing would. Timed separately:

- ``tracker``: ``Tracker.update`` alone (Hungarian on cosine costs, memory bank);
- ``segment``: ``Segmenter.segment`` on an mp4 (decode + fake predict + track + RLE encoding),
  with the fake predictor's own time reported and subtracted (``stage3_fps``);
- ``pngs`` / ``overlay``: writing per-frame id PNGs and the overlay mp4.

With ``--model RUN_DIR`` the trained model's ``TrainedPredictor`` replaces the fake one (end-to-end fps).
Masks are produced on ``--device`` (cuda when available), so the GPU->CPU copy is included.

    OMP_NUM_THREADS=1 python benchmarks/segment.py --frames 120            # CPU
    python benchmarks/segment.py --frames 600 --device cuda --json out.json  # GPU machine
    python benchmarks/segment.py --frames 600 --device cuda --default-model --score-threshold 0  # default model
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from uvis.data.synthetic import write_video_file
from uvis.data.video import open_video
from uvis.data.vocabulary import Vocabulary
from uvis.predict.base import Predictor
from uvis.predict.types import FrameDetections
from uvis.track.segmenter import Segmenter
from uvis.track.tracker import Tracker, TrackerConfig


class FakePredictor(Predictor):
    """Moving discs with stable embeddings; cheap, so timings show the tracking/encoding cost."""

    def __init__(self, height: int, width: int, objects: int, queries: int, device: str, dim: int = 256,
                 seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self._vocabulary = Vocabulary.from_names([f"class{i}" for i in range(40)])
        self.h, self.w, self.n, self.q, self.dim, self.device = height, width, objects, queries, dim, device
        self.vectors = torch.randn(objects, dim, generator=g).to(device)
        self.start = torch.rand(objects, 2, generator=g) * torch.tensor([height, width])
        self.velocity = (torch.rand(objects, 2, generator=g) - 0.5) * 8
        self.radius = 20 + 40 * torch.rand(objects, generator=g)
        self.classes = torch.randint(0, 40, (objects,), generator=g)
        yy, xx = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
        self.yy, self.xx = yy.float(), xx.float()
        self.t = 0
        self.seconds = 0.0

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[FrameDetections]:
        t0 = time.perf_counter()
        out = []
        for _ in range(len(frames)):
            pos = self.start + self.velocity * self.t
            pos = torch.stack([pos[:, 0] % self.h, pos[:, 1] % self.w], dim=1).to(self.device)
            d2 = (self.yy[None] - pos[:, 0, None, None]) ** 2 + (self.xx[None] - pos[:, 1, None, None]) ** 2
            obj = d2 <= (self.radius.to(self.device)[:, None, None] ** 2)
            extra = self.q - self.n
            masks = torch.cat([obj, torch.zeros(extra, self.h, self.w, dtype=torch.bool, device=self.device)])
            emb = torch.cat([self.vectors + 0.1 * torch.randn_like(self.vectors),
                             torch.randn(extra, self.dim, device=self.device)])
            probs = torch.full((self.q, 40), 0.1 / 39, device=self.device)
            probs[torch.arange(self.n), self.classes] = 0.9
            scores = torch.cat([torch.full((self.n,), 0.9), torch.full((extra,), 0.05)]).to(self.device)
            out.append(FrameDetections(emb, probs, scores, masks))
            self.t += 1
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        return out


def bench_tracker(frames: int, objects: int, queries: int, dim: int = 256) -> float:
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(objects, dim, generator=g)
    dets = []
    for _ in range(min(frames, 200)):
        emb = torch.cat([vectors + 0.1 * torch.randn(objects, dim, generator=g), torch.randn(queries - objects, dim)])
        scores = torch.cat([torch.full((objects,), 0.9), torch.full((queries - objects,), 0.05)])
        dets.append(FrameDetections(emb, torch.zeros(queries, 1), scores, torch.zeros(queries, 1, 1, dtype=torch.bool)))
    tracker = Tracker(TrackerConfig())
    t0 = time.perf_counter()
    for i in range(frames):
        tracker.update(dets[i % len(dets)])
    return frames / (time.perf_counter() - t0)


def _untrained_run(tmp: Path, device: str, preset: str) -> Path:
    """A run of ``preset`` trained for one step from random weights on a synthetic video: the model's shape and
    cost are those of a trained one (only which queries pass the score threshold differs)."""
    from uvis.data.synthetic import make_dataset
    from uvis.train import TrainConfig, pseudo_labels_from_dataset, train

    h, w = (64, 96) if preset == "tiny" else (360, 640)
    dataset = make_dataset(tmp / "data", num_videos=1, num_frames=2, height=h, width=w, num_objects=2)
    pseudo_labels_from_dataset(dataset).save(tmp / "pseudo.json")
    cfg = TrainConfig.preset_config(preset, data=str(tmp / "data"), pseudo=str(tmp / "pseudo.json"),
                                    out=str(tmp / "run"), device=device, steps=1, batch_size=1, num_workers=0,
                                    init="random")
    return train(cfg, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--queries", type=int, default=20, help="candidates per frame returned by the predictor")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", help="training run folder: time the trained model instead of the fake predictor")
    ap.add_argument("--score-threshold", type=float, default=None,
                    help="tracker score threshold (default TrackerConfig's; 0 tracks every query: worst case)")
    ap.add_argument("--tiny-model", action="store_true",
                    help="train a 1-step 'tiny' preset run on synthetic data and time it (model speed, not quality)")
    ap.add_argument("--default-model", action="store_true",
                    help="the same with the 'default' preset (ResNet-50, 100 queries, random init): the model of the "
                         "fps target")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()

    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": args.device + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""),
        "size": f"{args.width}x{args.height}", "frames": args.frames, "objects": args.objects,
        "queries": args.queries, "batch_size": args.batch_size,
    }
    results["tracker_fps"] = round(bench_tracker(max(args.frames, 1000), args.objects, args.queries), 1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_video_file(tmp / "v.mp4", num_frames=args.frames, height=args.height, width=args.width,
                         num_objects=args.objects, fps=30.0)
        # Warm-up (kernels, allocator, cuDNN autotuning) on two batches, not a second pass over the whole video.
        write_video_file(tmp / "warm.mp4", num_frames=min(args.frames, 2 * args.batch_size), height=args.height,
                         width=args.width, num_objects=args.objects, fps=30.0)
        video = open_video(tmp / "v.mp4")
        t0 = time.perf_counter()
        n_decoded = sum(1 for _ in open_video(tmp / "v.mp4"))
        results["decode_fps"] = round(n_decoded / (time.perf_counter() - t0), 1)
        preset = "tiny" if args.tiny_model else "default" if args.default_model else None
        if preset:
            args.model = str(_untrained_run(tmp, args.device, preset))
        if args.model:
            from uvis.predict.trained import TrainedPredictor

            predictor = TrainedPredictor.from_run(args.model, args.device)
            results["predictor"] = f"{preset} preset (1 training step)" if preset else f"trained model {args.model}"
        else:
            predictor = FakePredictor(args.height, args.width, args.objects, args.queries, args.device)
            results["predictor"] = "fake (moving discs)"
        tcfg = TrackerConfig() if args.score_threshold is None else TrackerConfig(score_threshold=args.score_threshold)
        results["score_threshold"] = tcfg.score_threshold
        seg = Segmenter(predictor, tracker_config=tcfg, top_k=10)
        seg.segment(open_video(tmp / "warm.mp4"), batch_size=args.batch_size, progress=False)
        predictor = seg.predictor  # the segmenter's own copy, which counts the seconds
        if isinstance(predictor, FakePredictor):
            predictor.seconds = 0.0
        result = seg.segment(video, batch_size=args.batch_size, progress=False)
        results["segment_fps"] = round(result.fps, 1)
        if isinstance(predictor, FakePredictor):
            stage3 = result.seconds - predictor.seconds
            results["fake_predict_seconds"] = round(predictor.seconds, 3)
            results["stage3_fps"] = round(result.num_frames / stage3, 1)  # decode + track + encode
        results["tracks"] = len(result.tracks)
        if args.json:  # kept if writing the PNGs / overlay below runs past a time limit
            Path(args.json).write_text(json.dumps(results, indent=2))
        t0 = time.perf_counter()
        result.save_pngs(tmp / "png")
        results["png_fps"] = round(result.num_frames / (time.perf_counter() - t0), 1)
        t0 = time.perf_counter()
        result.save_overlay(tmp / "overlay.mp4")
        results["overlay_fps"] = round(result.num_frames / (time.perf_counter() - t0), 1)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
