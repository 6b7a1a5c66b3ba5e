"""``uvis train``: train the stage-2 VIS model on a pseudo-label file (one process, or one per GPU under torchrun)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from uvis.cli.flags import renamed

if TYPE_CHECKING:
    from uvis.jobs import Change
    from uvis.train import RunFolder, TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the VIS model on pseudo-labels",
        description="Train a Mask2Former-style per-frame VIS model on frame-level pseudo-labels. Class-aware when "
        "the pseudo-label file has categories, class-agnostic otherwise. With CLIP embeddings beside the pseudo file "
        "(PSEUDO.embeddings.npz, from uvis name) the model also learns a CLIP head, which makes `uvis segment "
        "--classes` accept any names. Multi-GPU: "
        "torchrun --nproc-per-node 8 -m uvis train ... (the batch size is per process).",
    )
    p.add_argument("--data", required=True, help="the frames: a dataset folder/JSON, a folder of frame folders, "
                   "or the frame root of the pseudo file's file_names")
    p.add_argument("--pseudo", required=True, metavar="PSEUDO_JSON", help="pseudo-label file (uvis pseudo-label)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (config, checkpoints, metrics)")
    # Flags that set the run's config have no argparse default (None = not given), so that --resume can tell a
    # flag given with another value than the run's (an error) from one left out.
    p.add_argument("--preset", choices=["tiny", "default"],
                   help="model/training preset (tiny: test-size model; default: ResNet-50, 360x640 crops)")
    renamed(p, "--config", "--preset")
    p.add_argument("--steps", type=int, help="total optimisation steps (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="frames per process and step")
    p.add_argument("--lr", type=float, help="peak learning rate of the heads (backbone: 0.1x)")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR from its last checkpoint under its stored settings; only --steps (to extend "
                        "it), paths and operational flags (--device, --workers, --checkpoint-every, --no-progress) "
                        "may change")
    p.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda or cuda:N (under torchrun: cuda, "
                                    "each process on the GPU of its LOCAL_RANK)")
    p.add_argument("--init", choices=["dino", "random"],
                   help="backbone initialisation: self-supervised DINO ResNet-50 or random (default: preset's)")
    p.add_argument("--backbone", metavar="NAME", help="override the preset's backbone: resnet50, dino_vits16, "
                   "dino_vits8, dino_vitb16, dino_vitb8 (DINO weights exist for these), or any timm ResNet")
    p.add_argument("--backbone-weights", metavar="PATH", help="dino_resnet50_pretrain.pth (file or folder)")
    p.add_argument("--workers", type=int, help="data-loading processes per training process")
    p.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-clip", action="store_true",
                   help="ignore the CLIP embeddings beside the pseudo file (PSEUDO.embeddings.npz): no CLIP head, "
                        "so `uvis segment --classes` is limited to the trained classes")
    p.add_argument("--clip-weight", type=float, help="weight of the CLIP distillation loss (default 2.0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.errors import UserError
    from uvis.train import RunFolder, TrainConfig, train

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps}", fix="pass a positive number of steps")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}", fix="pass a positive batch size")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every {args.checkpoint_every}", fix="pass a positive number of steps")
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"--lr {args.lr}", fix="pass a positive learning rate, e.g. 1e-4")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}", fix="pass 0 (load in the training process) or more")
    run_folder = RunFolder(Path(args.out), "--out")
    if args.resume and run_folder.exists():
        return _done(train(_resumed_config(args, run_folder), resume=True, progress=not args.no_progress))
    config = TrainConfig.preset_config(
        args.preset or "default", data=args.data, pseudo=args.pseudo, out=args.out, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, device=args.device, init=args.init, backbone_weights=args.backbone_weights,
        num_workers=args.workers, seed=args.seed, checkpoint_every=args.checkpoint_every)
    if args.backbone:
        config.model.backbone = args.backbone
    config.clip_distill = not args.no_clip
    if args.clip_weight is not None:
        config.loss.clip_weight = args.clip_weight
    return _done(train(config, resume=args.resume, progress=not args.no_progress))


# setting of the run's config -> its flag (the settings a resume refuses to change, as the flags name them)
_FLAGS = {"preset": "--preset", "batch_size": "--batch-size", "lr": "--lr", "init": "--init",
          "model.backbone": "--backbone", "backbone_weights": "--backbone-weights", "seed": "--seed",
          "clip_distill": "--no-clip", "loss.clip_weight": "--clip-weight"}


def _resumed_config(args: argparse.Namespace, run_folder: RunFolder) -> TrainConfig:
    """The run's stored config with the flags given now; a setting flag given with another value than the run's
    is refused by the trainer's own check (``uvis.train.trainer.check_resume``), in the flags' words."""
    import copy

    from uvis.train.trainer import check_resume, read_train_config

    stored = read_train_config(run_folder)
    config = copy.deepcopy(stored)

    def same_path(given: str, old: str | None) -> bool:
        return old is not None and Path(given).expanduser().resolve() == Path(old).expanduser().resolve()

    for key, value in {"preset": args.preset, "batch_size": args.batch_size, "lr": args.lr, "init": args.init,
                       "seed": args.seed, "clip_distill": False if args.no_clip else None,
                       "backbone_weights": None if args.backbone_weights is None or same_path(
                           args.backbone_weights, stored.backbone_weights) else args.backbone_weights,
                       # operational settings and paths (the folder may have moved since it was made)
                       "steps": args.steps, "device": args.device, "num_workers": args.workers, "data": args.data,
                       "pseudo": args.pseudo, "checkpoint_every": args.checkpoint_every, "out": args.out}.items():
        if value is not None:
            setattr(config, key, value)
    if args.backbone is not None:
        config.model.backbone = args.backbone
    if args.clip_weight is not None:
        config.loss.clip_weight = args.clip_weight

    def in_flags(changes: list[Change]) -> str:
        named = [f"{_FLAGS[c.key]}{'' if c.key == 'clip_distill' else f' {c.new}'} (run: "
                 f"{('CLIP head' if c.old else 'no CLIP head') if c.key == 'clip_distill' else c.old})"
                 if c.key in _FLAGS else str(c) for c in changes]
        return (f"--resume continues the run with its stored settings, but {', '.join(named)} "
                f"{'differs' if len(named) == 1 else 'differ'}")

    check_resume(stored, config, run_folder, message=in_flags)
    return config


def _done(run_dir: Path) -> int:
    if int(os.environ.get("RANK", "0")) == 0:  # one line per run, not per torchrun process
        print(f"trained model in {run_dir}")
    return 0
