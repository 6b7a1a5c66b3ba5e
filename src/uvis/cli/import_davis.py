"""``uvis import-davis``: turn a DAVIS folder into a YouTube-VIS annotation file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-davis",
        help="convert a DAVIS-2016/2017 folder to a class-agnostic YouTube-VIS JSON",
        description="Read ROOT/JPEGImages/<res>/<seq>/*.jpg and ROOT/Annotations/<res>/<seq>/*.png and write "
        "YouTube-VIS ground truth (one category 'object'; file_names relative to ROOT/JPEGImages/<res>, so pass "
        "--frames ROOT/JPEGImages/<res> when segmenting the JSON). Score results against it with "
        "uvis eval OUT RESULTS --class-agnostic.",
    )
    p.add_argument("root", help="DAVIS root folder (holds JPEGImages/ and Annotations/)")
    p.add_argument("--out", required=True, help="output JSON path")
    p.add_argument("--resolution", default="480p", help="resolution sub-folder (default: 480p)")
    p.add_argument("--sequences", nargs="+", default=None, help="only these sequences (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.data.davis import load_davis

    dataset = load_davis(args.root, resolution=args.resolution, sequences=args.sequences)
    dataset.save(args.out)
    frames = sum(v.length for v in dataset.videos)
    print(f"wrote {args.out}: {len(dataset.videos)} sequences, {frames} frames, {len(dataset.tracks)} object tracks; "
          f"frame root {dataset.frame_root}")
    # the JSON does not sit beside its frames, and its one category is 'object': say how to use it
    print(f"score results of the same videos with: uvis eval {args.out} RESULTS.json --class-agnostic")
    # a DAVIS root segments every sequence, so with --sequences only the JSON gives the same video ids
    root = "" if args.sequences else f"uvis segment {args.root} ... or "
    print(f"  (segment them with: {root}uvis segment {args.out} --frames {dataset.frame_root} ...)")
    return 0
