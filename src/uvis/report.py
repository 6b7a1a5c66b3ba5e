"""A human-readable run report: ``report.md`` with the numbers, tables and pictures of one run.

Plots are written as small PNGs next to the markdown so the report renders anywhere (GitHub, an editor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from uvis.data import atomic
from uvis.data.overlay import contact_sheet

STAT_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


@dataclass
class ReportInputs:
    title: str
    commands: list[str] = field(default_factory=list)
    # name -> the 12 YouTube-VIS numbers (e.g. "class-aware", "class-agnostic", ablation variants)
    evaluations: dict[str, dict[str, float]] = field(default_factory=dict)
    per_class_ap: dict[str, float] = field(default_factory=dict)
    masks_per_frame: list[int] = field(default_factory=list)
    # class name -> {"kept": n, "removed": n, "relabelled": n}
    prototype_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    overlay_frames: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(x: float) -> str:
    return "-" if x is None or x < 0 else f"{100 * x:.1f}"


def _stats_table(evaluations: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| run | " + " | ".join(STAT_KEYS) + " |", "|---" * (len(STAT_KEYS) + 1) + "|"]
    for name, stats in evaluations.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(stats.get(k, -1.0)) for k in STAT_KEYS) + " |")
    return lines


def _save_png(path: Path, image: np.ndarray) -> None:
    atomic.write_with(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG", optimize=True))


def _bar_plot(path: Path, labels: list[str], values: list[float], title: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(labels) + 1.5), 3.0), dpi=80)
    ax.bar(range(len(values)), values, color="#3b75af")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def write_report(out_dir: str | Path, inputs: ReportInputs) -> Path:
    """Write ``out_dir/report.md`` and its PNGs; return the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {inputs.title}", ""]
    if inputs.commands:
        md += ["Made with:", "", "```bash", *inputs.commands, "```", ""]
    if inputs.evaluations:
        md += ["## YouTube-VIS metrics (%)", "", *_stats_table(inputs.evaluations), ""]
    if inputs.per_class_ap:
        names = list(inputs.per_class_ap)
        md += ["## Per-class AP (%)", "", "| class | AP |", "|---|---|"]
        md += [f"| {n} | {_fmt(inputs.per_class_ap[n])} |" for n in names]
        defined = [(n, v) for n, v in inputs.per_class_ap.items() if v is not None and v >= 0]
        if defined:
            _bar_plot(out_dir / "per_class_ap.png", [n for n, _ in defined], [100 * v for _, v in defined],
                      "AP per class", "AP (%)")
            md += ["", "![per-class AP](per_class_ap.png)"]
        md.append("")
    if inputs.masks_per_frame:
        counts = np.bincount(np.asarray(inputs.masks_per_frame, dtype=int))
        md += ["## Pseudo-labels", "",
               f"{len(inputs.masks_per_frame)} frames, {int(np.sum(inputs.masks_per_frame))} masks, "
               f"{np.mean(inputs.masks_per_frame):.2f} masks per frame on average.", ""]
        _bar_plot(out_dir / "masks_per_frame.png", [str(i) for i in range(len(counts))], counts.tolist(),
                  "masks per frame", "frames")
        md += ["![masks per frame](masks_per_frame.png)", ""]
    if inputs.prototype_counts:
        md += ["### Semantic prototype memory", "", "| class | kept | removed | relabelled |", "|---|---|---|---|"]
        for name, c in inputs.prototype_counts.items():
            md.append(f"| {name} | {c.get('kept', 0)} | {c.get('removed', 0)} | {c.get('relabelled', 0)} |")
        md.append("")
    if inputs.overlay_frames:
        _save_png(out_dir / "contact_sheet.png", contact_sheet(inputs.overlay_frames))
        md += ["## Results at a glance", "", "![overlay frames](contact_sheet.png)", ""]
    if inputs.notes:
        md += ["## Notes", "", *[f"- {n}" for n in inputs.notes], ""]
    path = out_dir / "report.md"
    atomic.write_with(path, lambda tmp: tmp.write_text("\n".join(md)))
    return path


def _overlay_samples(overlay_dir: Path, videos: int = 4, per_video: int = 3) -> list[np.ndarray]:
    """First, middle and last frame of the first few overlay videos."""
    from uvis.data.video import open_video

    frames: list[np.ndarray] = []
    for path in sorted(overlay_dir.glob("*.mp4"))[:videos]:
        video = open_video(path)
        wanted = {0, video.num_frames // 2, video.num_frames - 1} if per_video >= 3 else {0}
        for i, frame in enumerate(video):
            if i in wanted:
                frames.append(frame)
    return frames


def _flatten_evaluations(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for run_name, modes in results.items():
        for mode, payload in modes.items():
            rows[f"{run_name} ({mode})"] = payload["stats"]
    return rows


def write_run_report(pipeline, paths, results: dict[str, dict[str, dict]]) -> Path:  # noqa: ANN001 (uvis.pipeline types)
    """The report of a ``uvis run``: metrics of the run, its baseline and ablations, pseudo-label statistics."""
    import json

    from uvis.pipeline import command_line

    config = pipeline.config
    inputs = ReportInputs(title=f"uvis run: {Path(config.data).name}", commands=[command_line(config)])
    inputs.evaluations = _flatten_evaluations(results)
    inputs.per_class_ap = results.get("uvis", {}).get("class-aware", {}).get("per_class", {})
    if paths.named_file.is_file():
        named = json.loads(paths.named_file.read_text())
        per_frame: dict[tuple[int, int], int] = {}
        for a in named["annotations"]:
            key = (a["video_id"], a["frame_index"])
            per_frame[key] = per_frame.get(key, 0) + 1
        inputs.masks_per_frame = [per_frame.get((v["id"], t), 0) for v in named["videos"] for t in range(len(v["file_names"]))]
        per_class = named.get("stats", {}).get("naming", {}).get("per_class", {})
        inputs.prototype_counts = {name: {k: int(c.get(k, 0)) for k in ("kept", "removed", "relabelled")}
                                   for name, c in per_class.items()}
    inputs.overlay_frames = _overlay_samples(paths.segment / "overlays")
    if config.pseudo_from_ground_truth:
        inputs.notes.append("Stage 1 was replaced by the ground truth (pseudo_from_ground_truth): these numbers "
                            "measure stages 2-3 only, not the unsupervised pipeline.")
    if config.train_videos is not None:
        held_out = [i.name for i in pipeline.collection.items if i.name not in set(config.train_videos)]
        inputs.notes.append(f"The model was trained on {len(config.train_videos)} of {len(pipeline.collection.items)} "
                            f"videos; held out: {', '.join(held_out) or 'none'}. The metrics above pool both kinds.")
    if not inputs.evaluations:
        inputs.notes.append("The input has no annotations, so no metrics; see the overlays.")
    return write_report(Path(config.out), inputs)
