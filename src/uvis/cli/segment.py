"""``uvis segment``: segment, track and name the objects of videos.

Writes, under ``--out``:

- ``results.json``: YouTube-VIS results for every finished video (video ids of the collection);
- ``masks/<video>/<frame>.png``: per-frame instance-id PNGs (unless ``--no-png``);
- ``overlays/<video>.mp4``: coloured masks with track ids and class names (unless ``--no-overlay``);
- ``videos/<video>.json``: the per-video record, written last and atomically — a video with this
  file is finished, and a rerun skips it (resume; a rerun with another model — or other weights in the same
  run folder, told by their sha256 — classes or tracker settings is refused instead of mixing results);
- ``summary.json``: tracks, classes and speed, also printed.

``--classes``: with ``--model none`` any names (CLIP text embeddings; open vocabulary). With a trained
model that has a CLIP head (trained on pseudo-labels with CLIP embeddings beside them, the default after
``uvis name``) also any names, no retraining: each query's CLIP projection is scored against the CLIP text
embeddings of the names (the CLIP recorded in the run's ``clip.json``; ``--clip-weights`` if its weights
file moved), times the model's objectness. A trained model without the head accepts only the classes it
was trained on (probabilities restricted to them, not renormalised); other names exit with an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uvis.cli.flags import renamed
from uvis.cli.options import add_dino_arguments, add_fps_argument, add_motion_weight_argument

if TYPE_CHECKING:
    from uvis.data.sources import Collection
    from uvis.distributed import Group
    from uvis.predict.base import Predictor
    from uvis.track.segmenter import Segmenter
    from uvis.track.tracker import TrackerConfig

SIMILARITY_THRESHOLD = 0.5  # uvis.track.tracker.TrackerConfig's default (for the help; checked by a test)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment and track every object in videos",
        description="Segment, track and name every object in a video, a folder of videos or frames, or a dataset.",
    )
    p.add_argument("input", help="video file, frame folder, folder of videos, DAVIS folder or YouTube-VIS JSON")
    p.add_argument("--model", required=True,
                   help="a trained model: the --out of uvis train (or of uvis run), or 'none' for the training-free path "
                        "(MaskCut masks + CLIP embeddings)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--frames", help="frame root of a YouTube-VIS JSON input (default: JPEGImages beside it)")
    add_fps_argument(p)
    p.add_argument("--classes", help="comma-separated class names to report, e.g. 'dog,skateboard' (any names with "
                                     "--model none or a model trained with CLIP embeddings)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--top-k", type=int, default=10, help="tracks kept per video (default 10)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per model call (default 8)")
    p.add_argument("--no-track-memory", action="store_true",
                   help="previous-frame matching without re-identification (the MinVIS baseline)")
    renamed(p, "--no-memory", "--no-track-memory")
    p.add_argument("--memory", choices=["ema", "window", "last"], default="ema",
                   help="tracking memory bank: moving average of a track's embeddings, mean of its last few, or "
                        "only the last one (default ema)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="minimum score for a detection to start or continue a track (default 0.5; for benchmark "
                        "AP use 0.1 or less: AP only gains from weak tracks)")
    p.add_argument("--continue-threshold", type=float, default=None,
                   help="weaker detections down to this score may only continue an existing track (default 0.2)")
    p.add_argument("--similarity-threshold", type=float, default=None,
                   help=f"minimum cosine similarity of a detection to a track to match it "
                        f"(default {SIMILARITY_THRESHOLD})")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay videos")
    p.add_argument("--no-png", action="store_true", help="do not write per-frame id PNGs")
    p.add_argument("--shard", help="process only shard i/n of the videos, e.g. 0/4")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines, no CPU time estimate")
    p.add_argument("--accept-truncated", action="store_true",
                   help="use what decodes of a video file cut short (its index declares more frames than the file holds); default: an error")
    p.add_argument("--skip-bad-videos", action="store_true",
                   help="report an unreadable video and go on with the others (default: stop on it); a rerun "
                        "tries it again")
    g = p.add_argument_group("training-free path (--model none)")
    g.add_argument("--features", choices=["auto", "dino", "motion", "dino+motion"], default="auto",
                   help="stage-1 masks: MaskCut on DINO keys (dino), MotionCut on residual motion with no weights "
                        "(motion), MaskCut on the DINO graph fused with the motion graph (dino+motion), or dino when "
                        "its weights are found and motion otherwise (auto, the default)")
    add_motion_weight_argument(g)
    add_dino_arguments(g, weights_help="DINO checkpoint file, or a folder holding it under its official name")
    g.add_argument("--num-masks", type=int, default=None,
                   help="stage-1 masks per frame (default 3 with dino, 1 with motion)")
    g.add_argument("--resolution", type=int, default=480, help="MaskCut input size (default 480)")
    g.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    g.add_argument("--clip-pretrained", default="openai", help="pretrained tag naming the weights file")
    g.add_argument("--clip-weights", help="CLIP weights file, or a folder holding it (also used for a trained "
                                          "model's --classes, when its recorded CLIP weights moved)")
    p.set_defaults(func=run)


def resolve_device(device: str | None) -> str:
    from uvis.features.device import choose_device

    return str(choose_device(device or None))


def load_predictor(args: argparse.Namespace, device: str, collection: Collection) -> Predictor:
    """The predictor for ``--model`` and ``--classes`` (``uvis.predict.build.build_predictor``; tests replace this
    function to inject one)."""
    from uvis.predict.build import build_predictor

    return build_predictor(
        args.model, classes=args.classes, weights={"dino": args.dino_weights, "clip": args.clip_weights},
        categories=collection.dataset.categories if collection.dataset is not None else (),
        features=args.features, motion_weight=args.motion_weight, device=device, backbone=args.backbone,
        num_masks=args.num_masks,
        resolution=args.resolution, clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
        estimate_frames=None if args.no_progress else collection.count_frames())


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    from uvis.track.tracker import TrackerConfig

    overrides: dict[str, Any] = {}
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    if args.continue_threshold is not None:
        overrides["continue_threshold"] = args.continue_threshold
    if args.similarity_threshold is not None:
        overrides["similarity_threshold"] = args.similarity_threshold
    if args.no_track_memory:
        return TrackerConfig.minvis_baseline(**overrides)
    return TrackerConfig(memory=args.memory, **overrides)


def result_settings(args: argparse.Namespace, segmenter: Segmenter) -> dict[str, Any]:
    """What the results depend on (not output flags, batch size or device): a rerun must match them to resume."""
    none = args.model.lower() == "none"
    settings: dict[str, Any] = {
        "model": "none" if none else str(Path(args.model).resolve()),
        # the weights themselves: a model retrained in the same run folder keeps its path
        "weights": segmenter.predictor.fingerprint() or None,
        "classes": list(segmenter.vocabulary.names),
        "tracker": dataclasses.asdict(segmenter.tracker_config),
        "top_k": segmenter.top_k,
    }
    if none:
        settings["stage1"] = stage1_settings(args, segmenter.predictor)
    return settings


def stage1_settings(args: argparse.Namespace, predictor: Predictor) -> dict[str, Any]:
    """The training-free path's settings, as the results record them (the features and mask count chosen)."""
    from uvis.predict.stage1 import Stage1Predictor
    from uvis.pseudo.maskcut import FusedMaskCut
    from uvis.pseudo.motioncut import MotionCut

    if not isinstance(predictor, Stage1Predictor):  # an injected predictor: what was asked for
        return {k: getattr(args, k) for k in ("backbone", "num_masks", "resolution", "clip_model", "clip_pretrained")}
    proposals = predictor.proposals
    if isinstance(proposals, MotionCut):
        return {"features": "motion", "motion": proposals.config.to_json(),
                "clip": None if predictor.clip is None else [args.clip_model, args.clip_pretrained]}
    settings = {"backbone": args.backbone, "num_masks": proposals.config.num_masks, "resolution": args.resolution,
                "clip_model": args.clip_model, "clip_pretrained": args.clip_pretrained}
    if isinstance(proposals, FusedMaskCut):  # plain dino records stay as they were, so earlier outputs resume
        settings |= {"features": "dino+motion", "motion_weight": proposals.motion_weight}
    return settings


def run(args: argparse.Namespace) -> int:
    from uvis.distributed import job

    with job(args.device) as group:
        return _run(args, group)


def _run(args: argparse.Namespace, group: Group) -> int:
    from uvis.data.sources import discover, parse_shard, unreadable_list
    from uvis.track.collection import segment_collection
    from uvis.track.segmenter import Segmenter

    collection = discover(args.input, frames=args.frames, fps=args.fps, accept_truncated=args.accept_truncated)
    items = collection.items if not args.shard else collection.shard(*parse_shard(args.shard))
    device = resolve_device(group.device(args.device))
    start = time.perf_counter()
    predictor = load_predictor(args, device, collection)  # with --classes
    segmenter = Segmenter(predictor, tracker_config=tracker_config(args), top_k=args.top_k)
    summary = segment_collection(collection, items, segmenter, args.out, batch_size=args.batch_size,
                                 write_png=not args.no_png, write_overlay=not args.no_overlay,
                                 progress=not args.no_progress, settings=result_settings(args, segmenter),
                                 skip_bad=args.skip_bad_videos, group=group)
    if not group.is_main:  # rank 0 speaks for the job
        return 0
    wall = time.perf_counter() - start
    top = ", ".join(f"{k} {v}" for k, v in list(summary["classes"].items())[:8]) or "none"
    print(f"segmented {summary['segmented_now']} video(s), skipped {summary['skipped_finished']} finished "
          f"earlier; {summary['videos']} video(s) in the results")
    print(f"  frames {summary['frames']}, tracks {summary['tracks']}, classes: {top}")
    print(f"  speed {summary['fps'] if summary['fps'] is not None else '-'} frames/s (segmentation), "
          f"wall {wall:.1f} s on {device if not group.enabled else f'{group.world_size} processes'}")
    print(f"output in {args.out}:")
    for label, path, wanted in [("tracks (JSON)", args.out / "results.json", True),
                                ("overlay videos", args.out / "overlays", not args.no_overlay),
                                ("per-frame PNGs", args.out / "masks", not args.no_png),
                                ("summary", args.out / "summary.json", True)]:
        if wanted:
            print(f"  {label:<15} {path}")
    if summary["unreadable"]:
        print(f"  skipped {unreadable_list(summary['unreadable'])} (errors in {args.out / 'summary.json'})")
    return 0
