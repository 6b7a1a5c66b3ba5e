"""A human-readable run report: ``report.md`` with the numbers, tables and pictures of one run.

A pure renderer: ``write_report`` draws and writes what a ``RunReport`` holds, and reads nothing else (the
pipeline gathers it: ``uvis.pipeline.Pipeline.report``). Plots are written as small PNGs next to the markdown so
the report renders anywhere (GitHub, an editor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from uvis.data import atomic
from uvis.data.overlay import contact_sheet
from uvis.evaluation import STAT_KEYS

THUMB_WIDTH = 400  # contact-sheet frames: wide enough for labels of 14 px on 16:9 video


@dataclass
class OverlayRow:
    """Sample overlay frames of one video: one row of the contact sheet."""

    video: str
    frames: list[np.ndarray]
    frame_indices: list[int]
    tracks: int | None = None  # tracks found in the whole video, when known


@dataclass
class RunReport:
    """Everything ``report.md`` shows."""

    title: str
    commands: list[str] = field(default_factory=list)
    # name -> the 12 YouTube-VIS numbers (e.g. "class-aware", "class-agnostic", ablation variants)
    evaluations: dict[str, dict[str, float]] = field(default_factory=dict)
    # what a row (or the mode in a row's parentheses) means: "uvis" -> "this run, ...", "no-prototypes" -> ...
    row_meanings: dict[str, str] = field(default_factory=dict)
    per_class_ap: dict[str, float] = field(default_factory=dict)
    masks_per_frame: list[int] = field(default_factory=list)
    # class name -> {"kept": n, "removed": n, "relabelled": n}
    prototype_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # one row per video in the contact sheet, with a caption table
    overlay_rows: list[OverlayRow] = field(default_factory=list)
    # the training log (uvis train's metrics.jsonl records: step, loss, ...)
    training: list[dict] = field(default_factory=list)
    # what the masks-per-frame section counts (ground truth when it stood in for stage 1)
    masks_heading: str = "Pseudo-labels"
    # caveats a reader needs before reading the numbers; printed first
    notes: list[str] = field(default_factory=list)
    # what each pretrained weights file was used for -> {"file", "sha256"}
    weights: dict[str, dict[str, str]] = field(default_factory=dict)


def _fmt(x: float) -> str:
    return "-" if x is None or x < 0 else f"{100 * x:.1f}"


def _stats_table(evaluations: dict[str, dict[str, float]]) -> list[str]:
    keys = list(STAT_KEYS) + (["J"] if any("J" in stats for stats in evaluations.values()) else [])
    lines = ["| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, stats in evaluations.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(stats.get(k, -1.0)) for k in keys) + " |")
    return lines


def _row_meanings(names: list[str], meanings: dict[str, str]) -> list[str]:
    """One line per distinct kind of row ("uvis (class-aware)" -> run "uvis", mode "class-aware")."""
    seen: dict[str, str] = {}
    for name in names:
        run, _, mode = name.rpartition(" (")
        for part in (run, mode.rstrip(")")):
            if part in meanings and part not in seen:
                seen[part] = meanings[part]
    return [f"- *{k}*: {v}." for k, v in seen.items()]


def _row_sheet(rows: list[OverlayRow], thumb_width: int = THUMB_WIDTH, gap: int = 4) -> np.ndarray:
    """One row per video; a video with fewer sample frames leaves its last cells white."""
    cols = max(len(r.frames) for r in rows)
    tiles: list[np.ndarray] = []
    for r in rows:
        blank = np.full_like(r.frames[0], 255)
        tiles += list(r.frames) + [blank] * (cols - len(r.frames))
    return contact_sheet(tiles, cols=cols, thumb_width=thumb_width, gap=gap)


PLOT_SIZE, PLOT_DPI = (8.0, 4.5), 120  # 960x540 px, with text of 12-14 pt: readable on any screen


def _style(ax, title: str, xlabel: str | None, ylabel: str) -> None:  # noqa: ANN001 (matplotlib Axes)
    ax.set_title(title, fontsize=14)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)


def _line_plot(path: Path, xs: list[float], ys: list[float], title: str, xlabel: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
    ax.plot(xs, ys, color="#3b75af", marker="." if len(xs) < 30 else None)
    _style(ax, title, xlabel, ylabel)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _save_png(path: Path, image: np.ndarray) -> None:
    atomic.write_with(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG", optimize=True))


def _bar_plot(path: Path, labels: list[str], values: list[float], title: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(PLOT_SIZE[0], 0.4 * len(labels) + 2.0), PLOT_SIZE[1]), dpi=PLOT_DPI)
    ax.bar(range(len(values)), values, color="#3b75af")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 8 else 0,
                  ha="right" if len(labels) > 8 else "center")
    _style(ax, title, None, ylabel)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def write_report(out_dir: str | Path, inputs: RunReport) -> Path:
    """Write ``out_dir/report.md`` and its PNGs; return the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {inputs.title}", ""]
    if inputs.commands:
        md += ["Made with:", "", "```bash", *inputs.commands, "```", ""]
    if inputs.notes:
        md += ["## Read this first", "", *[f"- {n}" for n in inputs.notes], ""]
    if inputs.weights:
        md += ["## Pretrained weights", "", "| used for | file | sha256 |", "|---|---|---|"]
        md += [f"| {use} | {w.get('file', '-')} | `{w.get('sha256', '-')}` |" for use, w in inputs.weights.items()]
        md.append("")
    if inputs.evaluations:
        md += ["## YouTube-VIS metrics (%)", "", *_stats_table(inputs.evaluations), ""]
        meanings = _row_meanings(list(inputs.evaluations), inputs.row_meanings)
        if meanings:
            md += ["Rows:", "", *meanings, "",
                   "AP = average precision over IoU 0.50:0.95, AR*n* = recall with *n* tracks per video, "
                   "s/m/l = small/medium/large objects; - = undefined (no ground truth of that size)."
                   + (" J = DAVIS region similarity: per ground-truth object, the mean per-frame IoU of the "
                      "best-matching track, averaged per video, then over videos (class-agnostic rows)."
                      if any("J" in v for v in inputs.evaluations.values()) else ""), ""]
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
    # last record per step, in step order (a resumed run may have logged a step twice)
    losses = sorted({r["step"]: r["loss"] for r in inputs.training if "step" in r and "loss" in r}.items())
    if losses:
        (s0, l0), (s1, l1) = losses[0], losses[-1]
        md += ["## Training", "", f"Trained to step {s1}; loss {l0:.3f} at step {s0}, {l1:.3f} at step {s1}.", ""]
        if len(losses) > 1:
            _line_plot(out_dir / "training_loss.png", [s for s, _ in losses], [v for _, v in losses],
                       "training loss", "step", "loss")
            md += ["![training loss](training_loss.png)", ""]
    if inputs.masks_per_frame:
        counts = np.bincount(np.asarray(inputs.masks_per_frame, dtype=int))
        md += [f"## {inputs.masks_heading}", "",
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
    rows = [r for r in inputs.overlay_rows if r.frames]
    if rows:
        _save_png(out_dir / "contact_sheet.png", _row_sheet(rows))
        md += ["## Results at a glance", "",
               "One row per video (the first few), showing its first, middle and last frame. Each tracked object "
               "is coloured by track and labelled *track id, class, score*; no colour means nothing was tracked "
               "there.", "", "![overlay frames](contact_sheet.png)", "",
               "| row | video | frames shown | tracks in the video |", "|---|---|---|---|"]
        for i, r in enumerate(rows, 1):
            tracks = "-" if r.tracks is None else str(r.tracks)
            md.append(f"| {i} | {r.video} | {', '.join(str(t) for t in r.frame_indices)} | {tracks} |")
        md.append("")
    path = out_dir / "report.md"
    atomic.write_with(path, lambda tmp: tmp.write_text("\n".join(md)))
    return path
