"""``uvis export``: a results folder of ``uvis segment`` (or a run's ``segment/``) for other tools.

- ``--to fiftyone``: a FiftyOne video dataset folder (per-frame ``instances`` with masks and track ``index``);
  ``--name`` also keeps it in the local FiftyOne database (``fiftyone app launch NAME``). Needs ``uvis[interop]``.
- ``--to coco``: ``annotations.json`` with one COCO image per frame (RLE masks, ``score``, ``track_id``) and the
  frames as JPEGs under ``images/`` (``--no-images`` to leave them out).

Frames are read from where ``uvis segment`` found them (recorded per video); ``--data`` points at the input
instead, for folders written before that was recorded or whose input moved.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from uvis.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="a results folder as a FiftyOne dataset or COCO annotations",
        description="Export the tracks of a uvis segment output folder for FiftyOne or COCO image tools.")
    p.add_argument("results", type=Path, help="the --out folder of uvis segment (or RUN_DIR/segment of uvis run)")
    p.add_argument("--to", required=True, choices=["fiftyone", "coco"], help="export format")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--data", help="the input the results were made from (default: where the results say)")
    p.add_argument("--frames", help="frame root of a YouTube-VIS JSON given as --data")
    p.add_argument("--name", help="FiftyOne: also keep the dataset in the local FiftyOne database under this name")
    p.add_argument("--no-images", action="store_true", help="COCO: write the JSON only, not the frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvis.data.sources import discover
    from uvis.track.collection import finished_results, load_output_folder

    if args.name and args.to != "fiftyone":
        raise UserError("--name is for --to fiftyone", fix="drop --name")
    if args.frames and not args.data:
        raise UserError("--frames goes with --data", fix="pass --data with the YouTube-VIS JSON")
    if args.data:
        results = finished_results(discover(args.data, frames=args.frames), args.results)
        if not results:
            raise UserError("no finished video of --data in this folder", path=args.results,
                            fix="pass the input the folder was made from")
    else:
        results = load_output_folder(args.results)
    show = not args.no_progress
    if args.to == "coco":
        from uvis.export.coco import export_coco

        path = export_coco(results, args.out, write_images=not args.no_images, show_progress=show)
        print(f"COCO annotations of {len(results)} video(s): {path}")
    else:
        from uvis.export.fiftyone_dataset import export_fiftyone

        export_fiftyone(results, args.out, name=args.name, show_progress=show)
        print(f"FiftyOne dataset of {len(results)} video(s): {args.out}")
        print(f"  load it with: fo.Dataset.from_dir('{args.out}', dataset_type=fo.types.FiftyOneDataset)")
        if args.name:
            print(f"  kept in the local FiftyOne database as '{args.name}': fiftyone app launch {args.name}")
    return 0
