"""``uvis name``: name class-agnostic pseudo-masks with CLIP and clean them with the prototype memory (stage 1b)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    p.add_argument("--classes", default=None,
                   help="vocabulary: a file with one class per line, or \"a,b,c\" (default: the categories of --data)")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default: ViT-B-32)")
    p.add_argument("--clip-pretrained", default="openai", help="pretrained tag naming the weights file (default: openai)")
    p.add_argument("--clip-weights", default=None, help="CLIP weights file, or a folder holding it")
    p.add_argument("--templates", default="imagenet80", choices=["imagenet80", "short7", "single"],
                   help="prompt ensemble (default: the CLIP paper's 80 ImageNet templates)")
    p.add_argument("--background", default="blur", choices=["blur", "grey", "keep"],
                   help="what to do with pixels outside the mask in each crop (default: blur)")
    p.add_argument("--context", type=float, default=0.1, help="crop margin per side, fraction of the box (default 0.1)")
    p.add_argument("--batch-size", type=int, default=128, help="crops per CLIP batch (default 128)")
    p.add_argument("--no-prototypes", action="store_true", help="skip the prototype memory (keep CLIP's labels)")
    p.add_argument("--prototype-mode", default="two-pass", choices=["two-pass", "online"])
    p.add_argument("--min-prob", type=float, default=None, help="confidence to join the memory (default 0.5)")
    p.add_argument("--reject-threshold", type=float, default=None, help="cosine below which a mask is removed (0.5)")
    p.add_argument("--relabel-margin", type=float, default=None, help="margin for relabelling (default 0.05)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-embeddings", action="store_true", help="do not write the .embeddings.npz file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.data.sources import discover
    from uvis.errors import UserError
    from uvis.pseudo.clip_model import ClipConfig, ClipModel
    from uvis.pseudo.format import load_pseudo_labels
    from uvis.pseudo.name_labels import embeddings_path, name_and_embed, save_embeddings
    from uvis.pseudo.naming import NamingConfig
    from uvis.pseudo.prototypes import PrototypeConfig
    from uvis.pseudo.vocabulary import Vocabulary, parse_classes

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise UserError("output must be a .json file", path=out, fix="pass --out NAME.json")
    pseudo = load_pseudo_labels(args.pseudo)
    collection = discover(args.data, frames=args.frames)
    if args.classes is not None:
        vocabulary = parse_classes(args.classes)
    elif collection.dataset is not None and collection.dataset.categories:
        vocabulary = Vocabulary.from_categories(collection.dataset.categories)
    elif pseudo.categories:
        vocabulary = Vocabulary.from_categories(pseudo.categories)
    else:
        raise UserError("no vocabulary: the input has no categories", path=args.data,
                        fix="pass the class names with --classes \"a,b,c\" or --classes FILE")
    if len(vocabulary) == 1:
        print(f"uvis name: note: the vocabulary has one class ('{vocabulary.names[0]}'): every mask gets it; "
              "pass --classes to name objects", file=sys.stderr)
    naming_cfg = NamingConfig(context=args.context, background=args.background, batch_size=args.batch_size,
                              templates=args.templates, text_cache_dir=str(out.parent / ".uvis-cache"))
    proto = {k: v for k, v in (("min_prob", args.min_prob), ("reject_threshold", args.reject_threshold),
                               ("relabel_margin", args.relabel_margin)) if v is not None}
    proto_cfg = PrototypeConfig(enabled=not args.no_prototypes, mode=args.prototype_mode, **proto)
    clip = ClipModel.load(ClipConfig(model_name=args.clip_model, pretrained_tag=args.clip_pretrained,
                                     weights=args.clip_weights, device=args.device))
    named = name_and_embed(pseudo, collection, clip, vocabulary, naming_cfg, proto_cfg,
                           parts_dir=out.with_name(out.stem + ".parts"), progress=True)
    named.labels.save(out)
    if not args.no_embeddings:
        save_embeddings(embeddings_path(out), named)
    s = named.labels.stats["naming"]
    print(f"wrote {out}: {s['masks_out']} of {s['masks_in']} masks kept ({s['removed']} removed, "
          f"{s['relabelled']} relabelled) over {len(vocabulary)} classes")
    return 0
