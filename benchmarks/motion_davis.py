"""The weights-free stage 1 (``--features motion``) on real DAVIS-2016: J, class-agnostic AP and speed.

Stage 1 alone: per frame, the union of MotionCut's masks against the ground-truth foreground (DAVIS-2016 has
one foreground per frame); J = mean per-frame IoU (both empty: 1), averaged over frames, then sequences.
Stage 1 + tracker: ``uvis segment --model none --features motion`` (motion masks, colour-histogram tracking
embeddings), scored with ``uvis.evaluation`` (YouTube-VIS AP class-agnostic, DAVIS J of the best track).
``--ablate`` reruns stage 1 with one design choice changed each (the ablation table of RESULTS.md).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/motion_davis.py --davis ../shared/data/davis2016 \
        --ablate --tracker --json /tmp/motion_davis.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from uvis.data.davis import load_davis
from uvis.data.masks import decode
from uvis.data.video import open_video, with_next_frame
from uvis.features.motion import FlowEstimator, MotionConfig
from uvis.pseudo.motioncut import MotionCut, MotionCutConfig

# Methods that use only classical optical flow and colour, per-frame results of the DAVIS challenge averaged
# on exactly these 10 sequences (frames, then sequences).
ANCHORS = {"CUT": 0.552, "FST": 0.544, "NLC": 0.517, "MSG": 0.489, "CVOS": 0.472}

ABLATIONS: dict[str, dict] = {
    "default": {},
    "no border rule": {"border_rule": False},
    "no pixel step (patch masks)": {"pixel_threshold": 1e-6, "grow": 0},
    "GrabCut refinement": {"refine": "grabcut"},
    "3 masks per frame": {"num_masks": 3},
    "sigma 0.25": {"sigma": 0.25},
    "sigma 1.0": {"sigma": 1.0},
    "min contrast 1.0": {"min_contrast": 1.0},
    "flow preset fast": {"motion": {"flow_preset": "fast"}},
    "flow at 428 px (patch 8)": {"motion": {"work_size": 428, "patch": 8, "ransac_threshold": 1.0}},
    # per-video state (streamed videos only: with --every > 1 each scored frame starts a video, so these equal
    # the default there; run them on all frames)

    "no previous mask, no hole filling": {"temporal": 0.0, "fill_holes": False},
    "previous mask +0.3, holes not filled": {"temporal": 0.3, "fill_holes": False},
    "previous mask +0.6, holes not filled": {"temporal": 0.6, "fill_holes": False},
    "smoothed evidence 0.3": {"smooth": 0.3},
    "colour model 0.2": {"appearance": 0.2},
}


class CachedFlow:
    """A flow estimator that keeps each flow on disk, keyed by the two images and the preset (tuning runs only)."""

    def __init__(self, flow: FlowEstimator, preset: str, folder: Path):
        self.flow, self.preset, self.folder = flow, preset, folder
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(a.tobytes() + b.tobytes() + f"{a.shape}{self.preset}".encode()).hexdigest()
        path = self.folder / f"{key}.npy"
        if path.exists():
            return np.load(path)
        out = self.flow(a, b)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
        return out


def make_config(changes: dict) -> MotionCutConfig:
    changes = dict(changes)
    motion = MotionConfig(**changes.pop("motion", {}))
    return MotionCutConfig(motion=motion, **changes)


def frame_j(masks: list[tuple[np.ndarray, float]], tracks: list, t: int, shape: tuple[int, int]) -> float:
    """IoU of the union of one frame's masks with the union of the ground-truth objects (both empty: 1)."""
    pred = np.zeros(shape, bool)
    for m, _ in masks:
        pred |= m
    g = np.zeros(shape, bool)
    for tr in tracks:
        if tr.segmentations[t] is not None:
            g |= decode(tr.segmentations[t]).astype(bool)
    union = (pred | g).sum()
    return 1.0 if union == 0 else float((pred & g).sum() / union)


class FusedLabeller:
    """``--features dino+motion`` behind MotionCut's ``masks`` interface (frame-size bool masks and scores)."""

    def __init__(self, config: MotionCutConfig, backbone: str, weights: Path, motion_weight: float):
        from uvis.features.dino import DinoFeatures
        from uvis.pseudo.maskcut import FusedMaskCut, MaskCutConfig

        self.cut = FusedMaskCut(DinoFeatures(backbone, weights), MaskCutConfig(num_masks=config.num_masks),
                                motion=config.motion, motion_weight=motion_weight, sigma=config.sigma)
        self.stream = self.cut.stream

    def start_video(self) -> None:
        self.cut.start_video()

    def masks(self, frames: np.ndarray, next_frame: np.ndarray | None) -> list[list[tuple[np.ndarray, float]]]:
        return [[(decode(m.rle).astype(bool), m.score) for m in f] for f in self.cut(frames, next_frame)]


def stage1_j(root: Path, config: MotionCutConfig, every: int = 1, flow_cache: Path | None = None,
             fused: dict | None = None) -> tuple[dict[str, float], float, int]:
    """Per-sequence J of the union of each frame's masks; seconds per frame; frames with no mask.

    With ``every`` > 1 only the scored frames are labelled, each from its own neighbours: the same masks as the
    streamed video gives them, for a fraction of the work.
    """
    gt = load_davis(root)
    labeller: MotionCut | FusedLabeller = MotionCut(config) if fused is None else FusedLabeller(config, **fused)
    if flow_cache is not None:
        labeller.stream._flow = CachedFlow(labeller.stream._flow, config.motion.flow_preset, flow_cache)
    per_seq: dict[str, float] = {}
    seconds, frames, empty = 0.0, 0, 0
    for video in gt.videos:
        tracks = gt.tracks_of(video.id)
        clip = open_video(root / "JPEGImages" / "480p" / video.name)
        scored: list[tuple[int, list]] = []
        t0 = time.perf_counter()
        if every > 1:
            all_frames = clip.read_all()
            t0 = time.perf_counter()
            for t in range(0, len(all_frames), every):
                labeller.start_video()
                lo = max(t - 1, 0)
                following = all_frames[t + 1] if t + 1 < len(all_frames) else None
                scored.append((t, labeller.masks(all_frames[lo:t + 1], following)[-1]))
                frames += t + 1 - lo  # the scored frame and its predecessor were labelled
        else:
            labeller.start_video()
            for batch, nxt in with_next_frame(clip.batches(8)):
                start = len(scored)  # (not inside the comprehension: there len(scored) would not grow)
                scored += [(start + i, masks) for i, masks in enumerate(labeller.masks(batch, nxt))]
                frames += len(batch)
        seconds += time.perf_counter() - t0
        size = (video.height, video.width)
        per_seq[video.name] = float(np.mean([frame_j(masks, tracks, t, size) for t, masks in scored]))
        empty += sum(not masks for _, masks in scored)
    return per_seq, seconds / max(frames, 1), empty


def tracker_scores(root: Path, work: Path) -> dict[str, float]:
    """``uvis segment --model none --features motion`` on the DAVIS folder, then class-agnostic AP and J."""
    from uvis.cli.main import main as uvis_main
    from uvis.data.ytvis import load_results
    from uvis.evaluation import evaluate
    from uvis.evaluation.davis_j import davis_j

    out = work / "segment"
    t0 = time.perf_counter()
    code = uvis_main(["segment", str(root), "--model", "none", "--features", "motion", "--out", str(out),
                      "--no-overlay", "--no-png", "--no-progress", "--score-threshold", "0.05"])
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"uvis segment failed ({code})")
    gt = load_davis(root)
    results = load_results(out / "results.json", gt, check_categories=False)
    stats = evaluate(gt, results, class_agnostic=True).stats
    j = davis_j(gt, results)
    frames = sum(v.length for v in gt.videos)
    return {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"], "J": j.mean,
            "seconds_per_frame": wall / frames}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--davis", type=Path, default=Path("../shared/data/davis2016"))
    ap.add_argument("--every", type=int, default=1, help="score every n-th frame (all frames are processed)")
    ap.add_argument("--ablate", action="store_true", help="also run each ablation")
    ap.add_argument("--only", default=None, help="comma-separated ablation names to run")
    ap.add_argument("--set", default="", help="try other settings, e.g. 'sigma=0.3,motion.work_size=640'")
    ap.add_argument("--tracker", action="store_true", help="also run stage 1 + tracker (uvis segment)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/uvis-motion-davis"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--features", choices=["motion", "dino+motion"], default="motion")
    ap.add_argument("--dino-weights", type=Path, default=None, help="with --features dino+motion: the DINO checkpoint")
    ap.add_argument("--backbone", default="dino_vitb8", help="with --features dino+motion (default dino_vitb8)")
    ap.add_argument("--motion-weight", type=float, default=0.5, help="with --features dino+motion (default 0.5)")
    ap.add_argument("--flow-cache", type=Path, default=None,
                    help="keep flows in this folder between runs (tuning; seconds per frame then exclude the flow)")
    args = ap.parse_args()
    names = ["default"]
    if args.ablate:
        names = list(ABLATIONS)
    if args.only:
        names = args.only.split(",")
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}",
                    "anchors": ANCHORS, "stage1": {}}
    if args.set:
        changes: dict = {}
        for item in args.set.split(","):
            key, value = item.split("=")
            target = changes.setdefault("motion", {}) if key.startswith("motion.") else changes
            target[key.removeprefix("motion.")] = type(getattr(
                MotionConfig() if key.startswith("motion.") else MotionCutConfig(), key.removeprefix("motion.")))(value)
        ABLATIONS[f"set {args.set}"] = changes
        names = [f"set {args.set}"]
    for name in names:
        cfg = make_config(ABLATIONS[name])
        fused = None if args.features == "motion" else {
            "backbone": args.backbone, "weights": args.dino_weights, "motion_weight": args.motion_weight}
        per_seq, spf, empty = stage1_j(args.davis, cfg, args.every, args.flow_cache, fused)
        mean = float(np.mean(list(per_seq.values())))
        report["stage1"][name] = {"J": round(mean, 4), "seconds_per_frame": round(spf, 3),
                                  "frames_without_mask": empty, "per_sequence": {k: round(v, 4) for k, v in per_seq.items()},
                                  "config": dataclasses.asdict(cfg)}
        print(f"{name:<30} J {mean:.4f}  {spf:.2f} s/frame  empty {empty}  "
              + " ".join(f"{k[:8]} {v:.3f}" for k, v in per_seq.items()), flush=True)
    if args.tracker:
        report["tracker"] = tracker_scores(args.davis, args.work)
        print("stage 1 + tracker:", json.dumps({k: round(v, 4) for k, v in report["tracker"].items()}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
