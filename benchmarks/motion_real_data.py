"""The whole pipeline on real DAVIS-2016 with no pretrained weights and no ground truth in stages 1-3.

``uvis run DAVIS --features motion``: MotionCut pseudo-labels from residual optical flow (class-agnostic: no
CLIP weights here), the ``tiny`` model trained on them from random initialisation (on 8 sequences; 2 held
out, the same split as ``real_data.py``), every sequence segmented with the tracking memory on and off, and
scored class-agnostically (YouTube-VIS AP, DAVIS J of the best track). The stage-1 masks linked by IoU (the
run's baseline row) are scored too. Writes ``docs/reproduction/motion.md`` and a contact sheet.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/motion_real_data.py --shared ../shared --work /tmp/uvis-motion
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_data import REPO, davis_sheet, machine, pct, save_small_png, split_scores  # noqa: E402
from uvis.cli.run import command_line  # noqa: E402
from uvis.data.davis import load_davis  # noqa: E402
from uvis.pipeline import RunConfig, run_pipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--work", default="/tmp/uvis-motion")
    ap.add_argument("--docs", default=str(REPO / "docs" / "reproduction"))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--image-size", default="144x256")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--heldout", default="drift-chicane,scooter-black")
    args = ap.parse_args()
    davis_root = Path(args.shared) / "data" / "davis2016"
    work, docs = Path(args.work), Path(args.docs)
    work.mkdir(parents=True, exist_ok=True)
    gt = load_davis(davis_root)
    names = [v.name for v in gt.videos]
    heldout = [n for n in args.heldout.split(",") if n]
    train_names = [n for n in names if n not in heldout]
    h, w = (int(x) for x in args.image_size.split("x"))
    config = RunConfig(data=str(davis_root), out=str(work / "davis-motion"), device="cpu", progress=False,
                       features="motion", num_masks=1, train_preset="tiny", train_steps=args.steps,
                       train_batch_size=args.batch_size, image_size=(h, w), train_videos=train_names,
                       ablations=["no-track-memory"])
    config.command = command_line(config)  # shown in the report
    t0 = time.perf_counter()
    run_pipeline(config, "report", log=lambda s: print(s, flush=True))
    wall = time.perf_counter() - t0
    run = Path(config.out)
    rows = {}
    for label, res in (("uvis (tracking memory on)", run / "4-segment" / "results.json"),
                       ("tracking memory off", run / "ablations" / "no-track-memory" / "4-segment" / "results.json")):
        rows[label] = split_scores(gt, res, train_names, heldout)
    metrics = json.loads((run / "metrics.json").read_text())
    baseline = metrics.get("baseline: stage-1 masks + IoU linking", {}).get("class-agnostic", {})
    pseudo = json.loads((run / "1-pseudo-labels" / "pseudo_labels.json").read_text())
    tags = {n: ("held out" if n in heldout else "trained") for n in names}
    sheet = docs / "davis_motion.png"
    size = save_small_png(sheet, davis_sheet(gt, [*heldout, *train_names[::3]], run / "4-segment" / "overlays", tags))
    out = {"machine": machine(), "wall_s": round(wall, 1), "command": command_line(config),
           "stage1": pseudo.get("stats", {}),
           "rows": {k: {s: sc.__dict__ for s, sc in v.items()} for k, v in rows.items()},
           "baseline_stage1_iou_linking": baseline, "png_bytes": size}
    (docs / "motion_results.json").write_text(json.dumps(out, indent=1))
    lines = [
        "# The unsupervised pipeline on real DAVIS-2016, weights-free (`--features motion`)",
        "",
        "No pretrained weights and no ground truth anywhere in stages 1-3: stage 1 is MotionCut on residual optical",
        "flow (class-agnostic, no CLIP), stage 2 the `tiny` model trained from random initialisation on those",
        f"pseudo-labels of {len(train_names)} sequences (held out: {', '.join(heldout)}), stage 3 the tracker.",
        "The ground truth is used only to score. Scores are class-agnostic (DAVIS-2016 has one foreground object",
        "a sequence): YouTube-VIS AP and DAVIS J of the best-matching track.",
        "",
        f"Machine: {out['machine']}. Wall time of the run (stage 1, training, segmenting twice, evaluation, "
        f"report): {wall / 60:.1f} min.",
        "",
        "```bash",
        f"OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/motion_real_data.py --shared ../shared --steps {args.steps}",
        f"# which runs: {out['command']}",
        "```",
        "",
        "| tracks | videos | AP | AP50 | J |",
        "|---|---|---|---|---|",
    ]
    for label, parts in rows.items():
        for split, sc in parts.items():
            lines.append(f"| {label} | {split} | {pct(sc.ap)} | {pct(sc.ap50)} | {pct(sc.j)} |")
    if baseline:
        stats, j = baseline.get("stats", {}), baseline.get("davis_j", {})
        lines.append(f"| stage-1 masks linked by IoU (no training) | all | {pct(stats.get('AP', -1))} | "
                     f"{pct(stats.get('AP50', -1))} | {pct(j.get('mean', -1))} |")
    lines += ["", "J per sequence (memory on): " + ", ".join(
        f"{n} {pct(rows['uvis (tracking memory on)']['all'].per_video_j[n])}" for n in names), "",
        f"![overlays]({sheet.name})", "",
        "Stage-1 statistics: `" + json.dumps(pseudo.get("stats", {})) + "`", ""]
    (docs / "motion.md").write_text("\n".join(lines))
    print(f"wrote {docs / 'motion.md'}")
    print(shlex.join(["see", str(docs / "motion.md")]))


if __name__ == "__main__":
    main()
