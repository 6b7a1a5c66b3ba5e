"""``uvis pseudo-label``: pseudo-masks for every frame of a collection of videos (stage 1a, optionally 1b).

MaskCut on DINO features by default; ``--model RUN_DIR`` instead takes a trained model's confident
predictions (a self-training round); ``--name`` names the merged MaskCut file with CLIP right after.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from uvis.cli.name import add_naming_arguments, naming_configs, note_single_class
from uvis.cli.options import add_dino_arguments, add_motion_weight_argument

if TYPE_CHECKING:
    from uvis.distributed import Group
    from uvis.features.weights import Need

NAMED_NAME = "pseudo_labels_named.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pseudo-label",
        help="MaskCut pseudo-masks on DINO features for every frame (resumable, shardable)",
        description="Write DIR/videos/<video_id>.json per video and, once all videos are done, "
        "DIR/pseudo_labels.json (with --name also DIR/pseudo_labels_named.json and its CLIP embeddings). "
        "Rerun the same command to resume after an interruption.",
    )
    p.add_argument("data", help="videos: a YouTube-VIS JSON, a DAVIS folder, a video file, a frame folder, "
                   "or a folder of those")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", default=None, help="frame root for a YouTube-VIS JSON (default: JPEGImages beside it)")
    p.add_argument("--features", choices=["dino", "motion", "dino+motion"], default="dino",
                   help="dino: MaskCut on DINO keys (default, the paper's stage 1); motion: MotionCut on residual "
                        "optical flow, no weights needed (class-agnostic; see docs/pseudo-label.md); dino+motion: "
                        "MaskCut on the DINO graph fused with the motion graph")
    add_motion_weight_argument(p)
    add_dino_arguments(p, weights_help="checkpoint file, or a folder holding it under its official name")
    p.add_argument("--num-masks", type=int, default=None, help="cuts per frame (default: 3 with dino, 1 with motion)")
    p.add_argument("--resolution", type=int, default=480, help="square size frames are resized to (default: 480)")
    p.add_argument("--tau", type=float, default=0.15, help="affinity threshold (default: 0.15)")
    p.add_argument("--solver", default="eigh", choices=["eigh", "subspace"], help="MaskCut eigensolver: eigh = exact (Lanczos on CPU, dense on GPU); subspace = batched iterative, for GPUs")
    p.add_argument("--batch-size", type=int, default=16, help="frames per device batch (default: 16)")
    p.add_argument("--shard", default=None, help="process only shard i of n, written i/n (e.g. 0/4)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast for DINO on GPU (slower)")
    p.add_argument("--crf", action="store_true", help="refine masks with a dense CRF (pip install 'uvis[crf]')")
    p.add_argument("--overwrite", action="store_true", help="discard parts made with other settings")
    p.add_argument("--accept-truncated", action="store_true",
                   help="use what decodes of a video file cut short (its index declares more frames than the file holds); default: an error")
    p.add_argument("--skip-bad-videos", action="store_true",
                   help="report an unreadable video and go on with the others (default: stop on it); "
                        "skipped videos are left out of the merged file and retried by a rerun")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines, no CPU time estimate")
    st = p.add_argument_group("self-training (instead of MaskCut)")
    st.add_argument("--model", default=None, metavar="RUN_DIR",
                    help="label frames with the confident predictions of the model trained in RUN_DIR (uvis train)")
    st.add_argument("--min-score", type=float, default=0.5,
                    help="with --model: keep predictions with at least this score (default: 0.5)")
    nm = p.add_argument_group("naming (stage 1b, with --name)")
    nm.add_argument("--name", action="store_true",
                    help="name the merged masks with CLIP and the prototype memory into DIR/" + NAMED_NAME)
    add_naming_arguments(nm, classes_help="(default: the dataset's categories)")
    p.set_defaults(func=run)


def stage1_needs(args: argparse.Namespace, *, dino: bool, clip: bool) -> list[Need]:
    """The weights files of stage 1 (for ``check_needs``): DINO when MaskCut runs (``--dino-weights``), and CLIP
    when naming: ``pseudo-label``'s flags for ``uvis.predict.build.stage1_needs``."""
    from uvis.predict.build import stage1_needs as needs

    return needs(args.backbone, args.dino_weights, args.clip_model, args.clip_pretrained, args.clip_weights,
                 dino=dino, clip=clip)


def run(args: argparse.Namespace) -> int:
    from uvis.distributed import job

    with job(args.device) as group:
        return _run(args, group)


def _run(args: argparse.Namespace, group: Group) -> int:
    from uvis.data.sources import discover, parse_shard, unreadable_list
    from uvis.errors import UserError
    from uvis.features.weights import check_needs

    say = group.say
    shard = parse_shard(args.shard) if args.shard else None
    device = None if args.device == "auto" else args.device
    collection = discover(args.data, frames=args.frames, accept_truncated=args.accept_truncated)
    vocabulary = None
    if args.name:
        if args.model:
            raise UserError("--name with --model: the model's pseudo-labels are already named",
                            fix="drop --name (or run uvis name on the output to re-name them with CLIP)")
        from uvis.data.vocabulary import choose_vocabulary

        # before the long MaskCut pass, so a missing vocabulary fails at once
        vocabulary = choose_vocabulary(args.classes, collection.dataset.categories if collection.dataset else [],
                                       source=args.data)
        if group.is_main:
            note_single_class("pseudo-label", vocabulary)
    check_needs(stage1_needs(args, dino=not args.model and args.features != "motion",
                             clip=vocabulary is not None))
    if args.model:
        from uvis.predict.self_training import SelfTrainingConfig, self_train_collection

        out = self_train_collection(collection, args.out, args.model, SelfTrainingConfig(min_score=args.min_score),
                                    device=device, batch_size=args.batch_size, shard=shard, overwrite=args.overwrite,
                                    progress=not args.no_progress, skip_bad=args.skip_bad_videos, group=group)
    else:
        from uvis.pseudo.collection import PseudoLabelConfig, pseudo_label_collection
        from uvis.pseudo.maskcut import MaskCutConfig
        from uvis.pseudo.motioncut import MotionCutConfig

        if args.features == "motion" and args.crf:
            raise UserError("--crf refines MaskCut's masks; motion masks are refined by their flow",
                            fix="drop --crf, or use --features dino")
        config = PseudoLabelConfig(
            backbone=args.backbone,
            amp=not args.fp32,
            features=args.features,
            maskcut=MaskCutConfig(resolution=args.resolution, tau=args.tau, num_masks=args.num_masks or 3,
                                  crf=args.crf, solver=args.solver),
            motion=MotionCutConfig(num_masks=args.num_masks or 1),
            motion_weight=args.motion_weight,
        )
        out = pseudo_label_collection(collection, args.out, config, weights=args.dino_weights, device=args.device,
                                      batch_size=args.batch_size, shard=shard, overwrite=args.overwrite,
                                      progress=not args.no_progress, skip_bad=args.skip_bad_videos, group=group)
    if args.skip_bad_videos:
        from uvis.pseudo.collection import skipped_videos

        if skipped := skipped_videos(collection, args.out):
            say(f"skipped {unreadable_list(skipped)} (errors in {Path(args.out) / 'videos'}/*.failed.json)")
    if not out.exists():
        then = " and named" if vocabulary is not None else ""
        say(f"shard done; {out} is written{then} once every shard has finished (rerun any shard to merge)")
        return 0
    say(f"wrote {out}")
    if vocabulary is not None:
        from uvis.pseudo.name_labels import name_file, naming_summary

        named_out = Path(args.out) / NAMED_NAME
        clip_cfg, naming_cfg, proto_cfg = naming_configs(args, Path(args.out) / ".uvis-cache", device)
        named = name_file(out, collection, named_out, vocabulary, clip_cfg, naming_cfg, proto_cfg,
                          progress=not args.no_progress, group=group)
        say(naming_summary(named_out, named, vocabulary))
    return 0

