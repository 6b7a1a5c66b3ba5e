"""``uvis pseudo-label``: MaskCut pseudo-masks for every frame of a collection of videos (stage 1a)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from uvis.features.dino import VITS

    p = subparsers.add_parser(
        "pseudo-label",
        help="MaskCut pseudo-masks on DINO features for every frame (resumable, shardable)",
        description="Write DIR/videos/<video_id>.json per video and, once all videos are done, "
        "DIR/pseudo_labels.json. Rerun the same command to resume after an interruption.",
    )
    p.add_argument("data", help="videos: a YouTube-VIS JSON, a DAVIS folder, a video file, a frame folder, "
                   "or a folder of those")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", default=None, help="frame root for a YouTube-VIS JSON (default: JPEGImages beside it)")
    p.add_argument("--backbone", default="dino_vitb8", choices=[n for n in VITS if n != "tiny"] + ["tiny"],
                   metavar="NAME", help="DINO backbone: dino_vits16, dino_vits8, dino_vitb16, dino_vitb8 (default)")
    p.add_argument("--weights", default=None, help="checkpoint file, or a folder holding it under its official name")
    p.add_argument("--num-masks", type=int, default=3, help="cuts per frame (default: 3)")
    p.add_argument("--resolution", type=int, default=480, help="square size frames are resized to (default: 480)")
    p.add_argument("--tau", type=float, default=0.15, help="affinity threshold (default: 0.15)")
    p.add_argument("--solver", default="eigh", choices=["eigh", "subspace"], help="eigen-solver (default: eigh)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per device batch (default: 16)")
    p.add_argument("--shard", default=None, help="process only shard i of n, written i/n (e.g. 0/4)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast for DINO on GPU (slower)")
    p.add_argument("--crf", action="store_true", help="refine masks with a dense CRF (pip install 'uvis[crf]')")
    p.add_argument("--overwrite", action="store_true", help="discard parts made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.data.sources import discover, parse_shard
    from uvis.pseudo.collection import PseudoLabelConfig, pseudo_label_collection
    from uvis.pseudo.maskcut import MaskCutConfig

    shard = parse_shard(args.shard) if args.shard else None
    config = PseudoLabelConfig(
        backbone=args.backbone,
        amp=not args.fp32,
        maskcut=MaskCutConfig(resolution=args.resolution, tau=args.tau, num_masks=args.num_masks, crf=args.crf,
                              solver=args.solver),
    )
    collection = discover(args.data, frames=args.frames)
    out = pseudo_label_collection(collection, args.out, config, weights=args.weights, device=args.device,
                                  batch_size=args.batch_size, shard=shard, overwrite=args.overwrite,
                                  progress=not args.no_progress)
    if out.exists():
        print(f"wrote {out}")
    else:
        print(f"shard done; {out} is written once every shard has finished (rerun any shard to merge)")
    return 0
