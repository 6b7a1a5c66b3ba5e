"""``uvis run``: the whole pipeline on a collection, each finished step skipped on rerun."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from uvis.cli.flags import FLAGS, SWITCHES, command_options, renamed
from uvis.cli.options import RUN_ABLATIONS, RUN_STEPS, add_dino_arguments, add_fps_argument, add_motion_weight_argument

if TYPE_CHECKING:
    from uvis.pipeline import RunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="raw videos to evaluated tracks: pseudo-label, name, train, segment, evaluate, report",
        description="Run every stage of uvis on DATA into RUN_DIR. Finished steps are skipped, so an interrupted "
        "run resumes; each step's settings are saved in its folder's step.json.",
    )
    p.add_argument("data", help="video, frame folder, folder of videos, YouTube-VIS JSON or DAVIS folder")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--vocabulary", metavar="TOML", help="a configs/*.toml file (vocabulary of YouTube-VIS 2019/2021, "
                                                        "OVIS, ...)")
    renamed(p, "--config", "--vocabulary")
    p.add_argument("--classes", help="vocabulary as \"a,b,c\" (overrides --vocabulary and the dataset's categories)")
    p.add_argument("--frames", help="frame root for a YouTube-VIS JSON given as DATA")
    add_fps_argument(p)
    p.add_argument("--stop-after", choices=RUN_STEPS, default="report", help="last step to run (default: report)")
    p.add_argument("--device", help="auto, cpu or cuda (default auto: cuda when available; pick a GPU with "
                                    "CUDA_VISIBLE_DEVICES)")
    p.add_argument("--features", choices=["dino", "motion", "dino+motion"], default="dino",
                   help="stage 1: MaskCut on DINO keys (dino, default), MotionCut on residual optical flow, no "
                        "weights needed (motion; without CLIP weights the labels stay class-agnostic), or MaskCut on "
                        "the DINO graph fused with the motion graph (dino+motion)")
    add_motion_weight_argument(p)
    add_dino_arguments(p)
    p.add_argument("--clip-weights", help="CLIP weights file or folder")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--num-masks", type=int, default=3, help="MaskCut masks per frame (default 3)")
    p.add_argument("--solver", default="eigh", choices=["eigh", "subspace"],
                   help="MaskCut eigensolver: eigh = exact (Lanczos on CPU, dense on GPU); subspace = batched iterative")
    p.add_argument("--templates", default="imagenet80", choices=["imagenet80", "short7", "single"],
                   help="CLIP prompt set (default: the 80 ImageNet templates)")
    p.add_argument("--no-prototypes", action="store_true", help="turn the semantic prototype memory off")
    p.add_argument("--no-track-memory", action="store_true", help="previous-frame-only matching (MinVIS baseline)")
    p.add_argument("--preset", default="default", choices=["default", "tiny"], help="model/training preset")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="training batch size per process (default: the preset's)")
    p.add_argument("--backbone-weights", help="DINO ResNet-50 weights for the model's backbone")
    p.add_argument("--image-size", help="training crop and inference size as HxW, e.g. 144x256 (default: the preset's)")
    p.add_argument("--train-videos", help="train only on these videos' pseudo-labels (comma-separated names); the "
                   "others are segmented and evaluated as held-out videos")
    p.add_argument("--ablate", default="", help=f"comma-separated variants reported side by side: "
                                                f"{', '.join(RUN_ABLATIONS)}")
    p.add_argument("--pseudo-from-ground-truth", action="store_true",
                   help="use the input's annotations instead of stage 1 (upper bound of stages 2-3; not unsupervised)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--accept-truncated", action="store_true",
                   help="use what decodes of a video file cut short (its index declares more frames than the file holds); default: an error")
    p.add_argument("--skip-bad-videos", action="store_true",
                   help="report an unreadable video and go on without it (default: stop on it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.pipeline import RunConfig, load_config_file, run_pipeline

    check_device(args.device)
    classes = None
    if args.vocabulary:
        classes = load_config_file(args.vocabulary).get("vocabulary", {}).get("names")
    if args.classes:
        from uvis.data.vocabulary import parse_classes

        classes = list(parse_classes(args.classes).names)
    config = RunConfig(
        data=args.data, out=args.out, frames=args.frames, fps=args.fps, classes=classes, device=args.device,
        progress=not args.no_progress, skip_bad_videos=args.skip_bad_videos, features=args.features, motion_weight=args.motion_weight, accept_truncated=args.accept_truncated, backbone=args.backbone, dino_weights=args.dino_weights, num_masks=args.num_masks,
        solver=args.solver, pseudo_from_ground_truth=args.pseudo_from_ground_truth, clip_model=args.clip_model,
        clip_weights=args.clip_weights, templates=args.templates, prototypes=not args.no_prototypes,
        train_preset=args.preset, train_steps=args.steps, train_batch_size=args.batch_size,
        backbone_weights=args.backbone_weights, track_memory=not args.no_track_memory,
        image_size=parse_image_size(args.image_size) if args.image_size else None,
        train_videos=[v.strip() for v in args.train_videos.split(",") if v.strip()] if args.train_videos else None,
        ablations=[a.strip() for a in args.ablate.split(",") if a.strip()],
    )
    config.command = command_line(config)  # shown in the report
    from uvis.distributed import job

    with job(args.device) as group:
        out = run_pipeline(config, args.stop_after, group=group)
        group.say(f"done: {out}" + (f" (report: {out / 'report.md'})" if args.stop_after == "report" else ""))
    return 0


def parse_image_size(text: str) -> tuple[int, int]:
    """``"144x256"`` -> (144, 256)."""
    from uvis.errors import UserError

    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UserError(f"bad --image-size '{text}'", fix="write it as HEIGHTxWIDTH, e.g. 144x256") from None
    if h < 32 or w < 32:
        raise UserError(f"--image-size {text} is too small", fix="use at least 32x32")
    return h, w


def check_device(device: str | None) -> None:
    """Fail before the first step, not after an hour of pseudo-labelling (the same rules as training's)."""
    if device is None:
        return
    from uvis.train.trainer import pick_device

    pick_device(device)


# RunConfig fields written by ``command_line`` in their own way (the others: FLAGS / SWITCHES, when run has them)
_FORMATS: dict[str, Any] = {
    "classes": ",".join, "train_videos": ",".join, "ablations": ",".join,
    "image_size": lambda size: f"{size[0]}x{size[1]}",
}


def command_line(config: RunConfig) -> str:
    """The ``uvis run`` command that reproduces ``config`` (settings left at their defaults are omitted; fields
    with no ``run`` flag are Python API only)."""
    import shlex

    from uvis.pipeline import RunConfig

    options = run_options()
    default = RunConfig(data=config.data, out=config.out)
    parts = ["uvis", "run", config.data, "--out", config.out]
    switches = []
    for f in dataclasses.fields(RunConfig):
        value = getattr(config, f.name)
        if f.name in ("data", "out") or value is None or value == getattr(default, f.name):
            continue
        if f.name in SWITCHES:
            flag, sets = SWITCHES[f.name]
            if flag in options and value == sets:
                switches.append(flag)
        elif FLAGS.get(f.name) in options:
            parts += [FLAGS[f.name], _FORMATS.get(f.name, str)(value)]
    return shlex.join(parts + switches)


def run_options() -> set[str]:
    """The flags of ``uvis run``."""
    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    return command_options(sub.choices["run"])
