"""``uvis name``: name class-agnostic pseudo-masks with CLIP and clean them with the prototype memory (stage 1b)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uvis.cli.flags import renamed

if TYPE_CHECKING:
    from uvis.data.vocabulary import Vocabulary
    from uvis.distributed import Group


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "name",
        help="give every pseudo-mask a class with CLIP, drop false positives, fix labels (stage 1b)",
        description="Read a stage-1 pseudo-label file and the videos it was made from, name every mask with "
        "CLIP over a vocabulary, filter/relabel with the semantic prototype memory, and write the named file "
        "plus the masks' CLIP embeddings (OUT without .json + .embeddings.npz).",
    )
    p.add_argument("pseudo", help="pseudo-label JSON written by `uvis pseudo-label`")
    p.add_argument("--data", required=True, help="the videos the pseudo-labels were made from (same as for pseudo-label)")
    p.add_argument("--frames", default=None, help="frame root for a YouTube-VIS JSON given as --data")
    p.add_argument("--out", required=True, help="output pseudo-label JSON")
    add_naming_arguments(p, classes_help="(default: the categories of --data, else those of the pseudo-label file)")
    renamed(p, "--batch-size", "--clip-batch-size")
    p.add_argument("--accept-truncated", action="store_true",
                   help="use what decodes of a video file cut short (its index declares more frames than the file holds); default: an error")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-embeddings", action="store_true", help="do not write the .embeddings.npz file")
    p.set_defaults(func=run)


def add_naming_arguments(p: argparse._ActionsContainer, *, classes_help: str) -> None:
    """The stage-1b options, shared by ``uvis name`` and ``uvis pseudo-label --name``."""
    p.add_argument("--classes", default=None,
                   help=f"vocabulary: a file with one class per line, or \"a,b,c\" {classes_help}")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default: ViT-B-32)")
    p.add_argument("--clip-pretrained", default="openai", help="pretrained tag naming the weights file (default: openai)")
    p.add_argument("--clip-weights", default=None, help="CLIP weights file, or a folder holding it")
    p.add_argument("--templates", default="imagenet80", choices=["imagenet80", "short7", "single"],
                   help="prompt ensemble (default: the CLIP paper's 80 ImageNet templates)")
    p.add_argument("--background", default="blur", choices=["blur", "grey", "keep"],
                   help="what to do with pixels outside the mask in each crop (default: blur)")
    p.add_argument("--context", type=float, default=0.1, help="crop margin per side, fraction of the box (default 0.1)")
    p.add_argument("--clip-batch-size", type=int, default=128, help="crops per CLIP batch (default 128)")
    p.add_argument("--no-prototypes", action="store_true", help="skip the prototype memory (keep CLIP's labels)")
    p.add_argument("--prototype-mode", default="two-pass", choices=["two-pass", "online"],
                   help="build the memory from all masks first, or frame by frame (default: two-pass)")
    p.add_argument("--min-prob", type=float, default=None, help="confidence to join the memory (default 0.5)")
    p.add_argument("--reject-threshold", type=float, default=None, help="cosine below which a mask is removed (0.5)")
    p.add_argument("--relabel-margin", type=float, default=None, help="margin for relabelling (default 0.05)")


def naming_configs(args: argparse.Namespace, cache_dir: Path, device: str | None) -> tuple[Any, Any, Any]:
    """(ClipConfig, NamingConfig, PrototypeConfig) from the options of ``add_naming_arguments``."""
    from uvis.pseudo.clip_model import ClipConfig
    from uvis.pseudo.naming import NamingConfig
    from uvis.pseudo.prototypes import PrototypeConfig

    clip_cfg = ClipConfig(model_name=args.clip_model, pretrained_tag=args.clip_pretrained, weights=args.clip_weights,
                          device=device)
    naming_cfg = NamingConfig(context=args.context, background=args.background, batch_size=args.clip_batch_size,
                              templates=args.templates, text_cache_dir=str(cache_dir))
    proto = {k: v for k, v in (("min_prob", args.min_prob), ("reject_threshold", args.reject_threshold),
                               ("relabel_margin", args.relabel_margin)) if v is not None}
    proto_cfg = PrototypeConfig(enabled=not args.no_prototypes, mode=args.prototype_mode, **proto)
    return clip_cfg, naming_cfg, proto_cfg


def note_single_class(command: str, vocabulary: Vocabulary) -> None:
    if len(vocabulary) == 1:
        print(f"uvis {command}: note: the vocabulary has one class ('{vocabulary.names[0]}'): every mask gets it; "
              "pass --classes to name objects", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from uvis.distributed import job

    with job(args.device) as group:
        return _run(args, group)


def _run(args: argparse.Namespace, group: Group) -> int:
    from uvis.data.sources import discover
    from uvis.data.vocabulary import choose_vocabulary
    from uvis.errors import UserError
    from uvis.features.weights import check_needs
    from uvis.pseudo.clip_model import clip_need
    from uvis.pseudo.format import load_pseudo_labels
    from uvis.pseudo.name_labels import name_file, naming_summary

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise UserError("output must be a .json file", path=out, fix="pass --out NAME.json")
    pseudo = load_pseudo_labels(args.pseudo)
    collection = discover(args.data, frames=args.frames, accept_truncated=args.accept_truncated)
    dataset_categories = collection.dataset.categories if collection.dataset is not None else []
    vocabulary = choose_vocabulary(args.classes, dataset_categories, pseudo.categories, source=args.data)
    if group.is_main:
        note_single_class("name", vocabulary)
    clip_cfg, naming_cfg, proto_cfg = naming_configs(args, out.parent / ".uvis-cache", args.device)
    check_needs([clip_need(clip_cfg)])  # before any video is read
    named = name_file(pseudo, collection, out, vocabulary, clip_cfg, naming_cfg, proto_cfg,
                      embeddings=not args.no_embeddings, progress=True, group=group)
    group.say(naming_summary(out, named, vocabulary))
    return 0
