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
import re
import sys
import time
from pathlib import Path
from typing import Any

from uvis.cli.options import add_fps_argument, add_motion_weight_argument
from uvis.data.sources import Collection, discover, parse_shard, unreadable_list
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.pseudo.vocabulary import parse_classes
from uvis.track.collection import segment_collection
from uvis.track.segmenter import FramePredictor, Segmenter
from uvis.track.tracker import TrackerConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    from uvis.features.dino import backbone_help

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
    p.add_argument("--no-memory", action="store_true",
                   help="previous-frame matching without re-identification (the MinVIS baseline)")
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
                        f"(default {TrackerConfig().similarity_threshold})")
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
    g.add_argument("--backbone", default="dino_vitb8", metavar="NAME", help=backbone_help())
    g.add_argument("--dino-weights", help="DINO checkpoint file, or a folder holding it under its official name")
    g.add_argument("--num-masks", type=int, default=None,
                   help="stage-1 masks per frame (default 3 with dino, 1 with motion)")
    g.add_argument("--resolution", type=int, default=480, help="MaskCut input size (default 480)")
    g.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    g.add_argument("--clip-pretrained", default="openai", help="pretrained tag naming the weights file")
    g.add_argument("--clip-weights", help="CLIP weights file, or a folder holding it (also used for a trained "
                                          "model's --classes, when its recorded CLIP weights moved)")
    p.set_defaults(func=run)


def resolve_device(device: str | None) -> str:
    from uvis.features.dino import pick_device

    return str(pick_device(device or None))


def load_predictor(args: argparse.Namespace, device: str, collection: Collection) -> FramePredictor:
    """The frame predictor for ``--model`` (tests replace this function to inject one)."""
    if args.model.lower() == "none":
        return _stage1_predictor(args, device, collection)
    run_dir = Path(args.model)
    if not run_dir.is_dir():
        raise UserError("model run folder not found", path=run_dir,
                        fix="pass the folder written by `uvis train`, or --model none")
    try:
        from uvis.model.predictor import FramePredictor as ModelPredictor
    except ImportError:
        raise UserError("this uvis version has no trained-model predictor", path=run_dir,
                        fix="use --model none for the training-free path") from None
    return ModelPredictor.from_run(run_dir, device, clip_weights=args.clip_weights)


def choose_features(args: argparse.Namespace) -> str:
    """``--features auto``: dino when its weights are found (or downloaded), else motion, said in one line."""
    if args.features != "auto":
        return args.features
    if args.dino_weights:
        return "dino"  # the user named a DINO file: a bad path is reported, never replaced by motion
    from uvis.errors import WeightsNotFoundError
    from uvis.features.dino import vit_need
    from uvis.features.weights import check_needs

    need = vit_need(args.backbone, None, "--dino-weights", "MaskCut")
    try:
        check_needs([need])
    except WeightsNotFoundError:
        print(f"no DINO weights ({need.spec.filename}): using the weights-free motion features "
              f"(--features motion); see the README's weights section to use DINO")
        return "motion"
    return "dino"


def _optional_clip(args: argparse.Namespace) -> Path | None:
    """With motion features CLIP is optional: without --classes and without its weights, objects are tracked by
    colour and all named 'object'."""
    from uvis.cli.pseudo_label import stage1_needs
    from uvis.errors import WeightsNotFoundError
    from uvis.features.weights import check_needs

    try:
        return check_needs(stage1_needs(args, dino=False, dino_flag="--dino-weights", clip=True))[0]
    except WeightsNotFoundError:
        if args.classes is not None:
            raise
    print("no CLIP weights: every object is named 'object' and tracked by its colours (pass --clip-weights "
          "or --classes to name objects)")
    return None


def _stage1_predictor(args: argparse.Namespace, device: str, collection: Collection) -> FramePredictor:
    """MaskCut or MotionCut + CLIP; the vocabulary is --classes, else the input dataset's categories (ids kept),
    else the starting vocabulary of configs/videos.toml.

    With motion features and no CLIP weights (nor --classes), the weights-free mode: one class, 'object'."""
    from uvis.cli.pseudo_label import stage1_needs
    from uvis.features.dino import note_cpu_speed, pick_device
    from uvis.features.weights import check_needs, provenance
    from uvis.pseudo.clip_model import ClipConfig
    from uvis.pseudo.maskcut import MaskCutConfig
    from uvis.pseudo.motioncut import MotionCutConfig
    from uvis.pseudo.vocabulary import STARTING_VOCABULARY, Vocabulary
    from uvis.track.stage1_predictor import OBJECT, Stage1Config, Stage1FramePredictor

    features = choose_features(args)
    dino_file: Path | None = None
    if features == "motion":
        clip_file = _optional_clip(args)
    else:
        dino_file, clip_file = check_needs(stage1_needs(args, dino=True, dino_flag="--dino-weights", clip=True))
    if clip_file is None:
        vocabulary = OBJECT
    elif args.classes is not None:
        vocabulary = parse_classes(args.classes)
    elif collection.dataset is not None and collection.dataset.categories:
        vocabulary = Vocabulary.from_categories(collection.dataset.categories)
    else:
        vocabulary = Vocabulary.from_names(list(STARTING_VOCABULARY))
    cfg = Stage1Config(
        features=features, backbone=args.backbone, dino_weights=dino_file,  # the files just found: the ones recorded
        maskcut=MaskCutConfig(num_masks=args.num_masks or 3, resolution=args.resolution),
        motion=MotionCutConfig(num_masks=args.num_masks or 1), motion_weight=args.motion_weight,
        clip=None if clip_file is None else ClipConfig(model_name=args.clip_model, pretrained_tag=args.clip_pretrained,
                                                       weights=clip_file),
    )
    args.features = features  # recorded in the results' settings
    args.num_masks = cfg.motion.num_masks if features == "motion" else cfg.maskcut.num_masks
    try:
        predictor = Stage1FramePredictor.create(vocabulary, cfg, device)
        # recorded per video: a rerun with other weights is refused instead of mixing results
        predictor.weights_id = {name: provenance(f) for name, f in (("dino", dino_file), ("clip", clip_file))
                                if f is not None}
    except UserError as e:  # the DINO loader names its own CLI's flag; here it is --dino-weights
        if e.fix is None or not re.search(r"(?<![\w-])--weights", e.fix):
            raise
        message = str(e).split(" — fix: ")[0]
        raise UserError(message, fix=re.sub(r"(?<![\w-])--weights", "--dino-weights", e.fix)) from None
    # notes once the models are loaded (an error before them stays the command's only line)
    if args.classes is None and vocabulary.names == STARTING_VOCABULARY:
        print(f"note: no --classes given: naming objects with the starting vocabulary of configs/videos.toml "
              f"({', '.join(STARTING_VOCABULARY)}); pass --classes \"a,b,c\" for your own", file=sys.stderr)
    if features != "motion" and not args.no_progress:  # the motion features run no DINO: nothing to estimate
        note_cpu_speed(pick_device(device), args.backbone, args.resolution, collection.count_frames())
    return predictor


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    overrides: dict[str, Any] = {}
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    if args.continue_threshold is not None:
        overrides["continue_threshold"] = args.continue_threshold
    if args.similarity_threshold is not None:
        overrides["similarity_threshold"] = args.similarity_threshold
    if args.no_memory:
        return TrackerConfig.minvis_baseline(**overrides)
    return TrackerConfig(memory=args.memory, **overrides)


def result_settings(args: argparse.Namespace, segmenter: Segmenter) -> dict[str, Any]:
    """What the results depend on (not output flags, batch size or device): a rerun must match them to resume."""
    none = args.model.lower() == "none"
    settings: dict[str, Any] = {
        "model": "none" if none else str(Path(args.model).resolve()),
        # the weights themselves: a model retrained in the same run folder keeps its path
        "weights": getattr(segmenter.predictor, "weights_id", None),
        "classes": [name for _, name in segmenter.vocabulary],
        "tracker": dataclasses.asdict(segmenter.tracker_config),
        "top_k": segmenter.top_k,
    }
    if none and args.features == "motion":
        predictor: Any = segmenter.predictor
        settings["stage1"] = {"features": "motion", "motion": predictor.proposals.config.to_json(),
                              "clip": None if predictor.clip is None else [args.clip_model, args.clip_pretrained]}
    elif none:
        settings["stage1"] = {k: getattr(args, k) for k in ("backbone", "num_masks", "resolution", "clip_model",
                                                            "clip_pretrained")}
        if args.features == "dino+motion":
            settings["stage1"] |= {"features": args.features, "motion_weight": args.motion_weight}
    return settings


def run(args: argparse.Namespace) -> int:
    from uvis.distributed import job

    with job(args.device) as group:
        return _run(args, group)


def _run(args: argparse.Namespace, group: Group) -> int:
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}", fix="use --top-k >= 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}", fix="use --batch-size >= 1")
    collection = discover(args.input, frames=args.frames, fps=args.fps, accept_truncated=args.accept_truncated)
    items = collection.items if not args.shard else collection.shard(*parse_shard(args.shard))
    # empty or repeated names are an error now, before any model is loaded
    classes = None if args.classes is None else list(parse_classes(args.classes).names)
    device = resolve_device(group.device(args.device))
    start = time.perf_counter()
    predictor = load_predictor(args, device, collection)
    # the stage-1 predictor takes --classes itself (open vocabulary, see _stage1_predictor)
    segmenter = Segmenter(predictor, tracker_config=tracker_config(args), top_k=args.top_k,
                          vocabulary=None if args.model.lower() == "none" else classes)
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
