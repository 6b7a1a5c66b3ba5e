"""``uvis eval``: score a YouTube-VIS results file against ground truth (official AP/AR rules)."""

from __future__ import annotations

import argparse
import json

from uvis.errors import UserError

_ROWS = [  # key, IoU, area, maxDets
    ("AP", "0.50:0.95", "all", 100),
    ("AP50", "0.50", "all", 100),
    ("AP75", "0.75", "all", 100),
    ("APs", "0.50:0.95", "small", 100),
    ("APm", "0.50:0.95", "medium", 100),
    ("APl", "0.50:0.95", "large", 100),
    ("AR1", "0.50:0.95", "all", 1),
    ("AR10", "0.50:0.95", "all", 10),
    ("AR100", "0.50:0.95", "all", 100),
    ("ARs", "0.50:0.95", "small", 100),
    ("ARm", "0.50:0.95", "medium", 100),
    ("ARl", "0.50:0.95", "large", 100),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="YouTube-VIS AP/AR of a results file",
        description="Compute the 12 YouTube-VIS metrics (AP, AP50, ..., ARl) exactly as the official "
        "youtubevos/cocoapi does. Areas (bounds inclusive): small <= 128^2, medium 128^2..256^2, large >= 256^2 "
        "pixels (mean over the frames where the object is visible). -1 (n/a) means undefined: no ground truth there.",
    )
    p.add_argument("gt", metavar="GT_JSON", help="YouTube-VIS ground-truth annotation file")
    p.add_argument("pred", metavar="PRED_JSON", help="results: [{video_id, category_id, score, segmentations}]")
    p.add_argument("--class-agnostic", action="store_true",
                   help="ignore categories (every track is one class; prediction category ids may be anything)")
    p.add_argument("--json", action="store_true", help="print the 12 numbers as one JSON object on the last line")
    p.add_argument("--per-class", action="store_true", help="also print AP per category")
    p.add_argument("--davis-j", action="store_true",
                   help="also print DAVIS J: per ground-truth object, the mean per-frame IoU of the best-matching "
                        "track (classes ignored), averaged per video and over objects")
    p.set_defaults(func=run)


def _fmt(x: float) -> str:
    return f"{x:.4f}" if x >= 0 else "   n/a"


def _guarded(load, what: str, path: str):
    """Run a loader; wrong types deep inside a JSON file become a UserError instead of a traceback."""
    try:
        return load()
    except UserError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        raise UserError(f"not a valid YouTube-VIS {what} file ({type(e).__name__}: {e})", path=path,
                        fix="write the file in the YouTube-VIS format") from None


def _hinted(error: UserError, class_agnostic: bool) -> UserError:
    """Add the likely cause to the two mistakes new users make most: a class-agnostic ground truth (e.g. from
    ``uvis import-davis``) scored class-aware, and results made from another dataset (other video ids)."""
    message, fix = error.message, error.fix or "check the file"
    if "unknown category_id" in message and not class_agnostic:
        return UserError(message, path=error.path, fix=f"{fix}, or pass --class-agnostic to ignore categories")
    if "segmentations but video" in message or "unknown video_id" in message:
        return UserError(message, path=error.path,
                         fix=f"{fix}; results must come from segmenting this ground truth's own videos "
                             "(uvis segment GT_JSON ..., or the DAVIS folder it was imported from)")
    return error


def run(args: argparse.Namespace) -> int:
    from uvis.data.ytvis import load_dataset, load_results
    from uvis.evaluation import evaluate

    gt = _guarded(lambda: load_dataset(args.gt), "ground-truth", args.gt)
    # class-agnostic scoring accepts any category ids (e.g. unnamed clusters of an unsupervised model)
    try:
        preds = _guarded(lambda: load_results(args.pred, gt, check_categories=not args.class_agnostic), "results",
                         args.pred)
    except UserError as e:
        raise _hinted(e, args.class_agnostic) from None
    result = evaluate(gt, preds, class_agnostic=args.class_agnostic)
    mode = "class-agnostic" if args.class_agnostic else "class-aware"
    print(f"YouTube-VIS evaluation ({mode}): {len(gt.videos)} videos, {len(gt.tracks)} GT tracks, "
          f"{len(preds)} predictions")
    print(f"{'metric':<7} {'IoU':<10} {'area':<7} {'maxDets':>7}  {'value':>6}")
    for key, iou, area, md in _ROWS:
        print(f"{key:<7} {iou:<10} {area:<7} {md:>7}  {_fmt(result.stats[key])}")
    if args.per_class:
        if result.per_class:
            width = max(len("category"), *(len(n) for n in result.per_class))
            print(f"\n{'category':<{width}}  {'AP':>6}")
            for name, ap in result.per_class.items():
                print(f"{name:<{width}}  {_fmt(ap)}")
        else:
            print("\n(no per-class AP in class-agnostic mode)")
    stats = dict(result.stats)
    if args.davis_j:
        from uvis.evaluation.davis_j import davis_j

        j = davis_j(gt, preds)
        print(f"\nDAVIS J (best-matching track per object): mean over videos {_fmt(j.mean)}, "
              f"over objects {_fmt(j.object_mean)}")
        stats |= {"J": j.mean, "J_objects": j.object_mean}
    if args.json:
        print(json.dumps(stats))
    return 0
