"""Segmenting a whole collection into one output folder, resumably (used by ``uvis segment`` and ``uvis run``).

Layout under ``out``: ``videos/<video>.json`` per finished video (written last and atomically; a rerun skips
the video), ``masks/<video>/<frame>.png``, ``overlays/<video>.mp4``, then ``results.json`` (YouTube-VIS results
of every finished video) and ``summary.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from uvis.data import atomic
from uvis.data.progress import progress as progress_reporter
from uvis.data.sources import Collection, VideoItem
from uvis.errors import UserError
from uvis.track.segmenter import Segmenter, VideoResult
from uvis.track.video_tracks import VideoTrack


def safe_name(name: str) -> str:
    """A video name usable as one file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "video"


def _record_path(out: Path, item: VideoItem) -> Path:
    return out / "videos" / f"{safe_name(item.name)}.json"


def _load_record(path: Path, item: VideoItem) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("video_id") != item.video_id or record.get("name") != item.name:
        return None
    return record


def segment_collection(
    collection: Collection,
    items: list[VideoItem],
    segmenter: Segmenter,
    out: Path,
    *,
    batch_size: int = 8,
    write_png: bool = True,
    write_overlay: bool = True,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Segment ``items``, skipping finished ones; then write results.json and summary.json.

    ``settings`` (what the results depend on: model, classes, tracker) are stored in every video record; a
    finished video made with other settings is an error rather than mixed into this run's results. An
    unreadable video stops the run (its error names it), or with ``skip_bad`` is reported, listed under
    ``unreadable`` in the summary, and left for a rerun to try again.
    """
    records: list[dict[str, Any]] = []
    done = skipped = 0
    unreadable: dict[str, str] = {}
    names = [safe_name(i.name) for i in items]
    if len(set(names)) != len(names):
        raise UserError("two videos map to the same output name", path=collection.root,
                        fix="give the videos distinct names")
    bar = progress_reporter(len(items), "videos", "video", enabled=progress)
    for item in items:
        record_path = _record_path(out, item)
        record = _load_record(record_path, item) if record_path.exists() else None
        if record is not None:
            _check_settings(record, settings, record_path)
            # finished earlier; outputs asked for now but not written then are made from the record
            _complete_outputs(item, record, segmenter, out, write_png=write_png, write_overlay=write_overlay)
            records.append(record)
            skipped += 1
            bar.update(1)
            continue
        try:
            result = segmenter.segment(item.open(), batch_size=batch_size, progress=progress)
        except UserError as e:
            if not skip_bad:
                raise
            unreadable[item.name] = str(e)
            bar.write(f"skipped {item.name}: {e}")
            bar.update(1)
            continue
        name = safe_name(item.name)
        if write_png:
            result.save_pngs(out / "masks" / name)
        if write_overlay:
            result.save_overlay(out / "overlays" / f"{name}.mp4")
        record = {
            "video_id": item.video_id,
            "name": item.name,
            # where the frames are, so that exports (uvis export) find them without the input's path
            "source": {"path": str(item.path.resolve()), "file_names": item.file_names},
            "summary": result.summary(),
            "tracks": [{"track_id": t.track_id, "class": t.class_name, "category_id": t.category_id,
                        "score": t.score, "frames_seen": t.num_frames_seen} for t in result.tracks],
            "results": result.results_json(item.video_id, item.name),
        }
        if settings is not None:
            record["settings"] = settings
        atomic.write_json(record_path, record)
        records.append(record)
        done += 1
        bar.update(1)
    bar.close()
    if unreadable and len(unreadable) == len(collection.items):
        raise UserError(f"none of the {len(unreadable)} videos could be read ({next(iter(unreadable.values()))})",
                        path=collection.root, fix="check the input videos")
    # Every finished video of the collection (also those of other shards / earlier runs), gathered and written
    # under the folder's lock so that shards finishing together cannot drop each other's last videos.
    wanted = {i.video_id for i in items}
    with atomic.folder_lock(out):
        for item in collection.items:
            if item.video_id in wanted:
                continue
            path = _record_path(out, item)
            rec = _load_record(path, item) if path.exists() else None
            if rec is not None:
                _check_settings(rec, settings, path)
                records.append(rec)
        records.sort(key=lambda r: r["video_id"])
        atomic.write_json(out / "results.json", [r for rec in records for r in rec["results"]])
        summary = _summarise(records, segmenter, done=done, skipped=skipped)
        summary["unreadable"] = unreadable
        atomic.write_json(out / "summary.json", summary, indent=2)
    return summary


def _check_settings(record: dict[str, Any], settings: dict[str, Any] | None, path: Path) -> None:
    """Refuse a finished video made with other settings (records from before settings were stored pass)."""
    old = record.get("settings")
    if settings is None or old is None:
        return
    new = json.loads(json.dumps(settings))
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise UserError(f"this video was segmented with other settings ({', '.join(changed)})", path=path,
                        fix="use another --out, the same settings, or delete the output folder's videos/ to redo")


def result_from_record(item: VideoItem, record: dict[str, Any], vocabulary: list[tuple[int, str]] | None = None,
                       ) -> VideoResult:
    """The ``VideoResult`` of a finished video again, from its ``videos/<video>.json`` record (for new outputs)."""
    tracks = [
        VideoTrack(track_id=int(t["track_id"]), category_id=int(t["category_id"]), class_name=str(t["class"]),
                   score=float(t["score"]), segmentations=r["segmentations"], num_frames_seen=int(t["frames_seen"]))
        for t, r in zip(record["tracks"], record["results"], strict=True)
    ]
    if vocabulary is None:
        vocabulary = sorted({(t.category_id, t.class_name) for t in tracks})
    return VideoResult(video=item.open(), tracks=tracks, vocabulary=vocabulary,
                       seconds=float(record.get("summary", {}).get("seconds", 0.0)))


def finished_results(collection: Collection, out: Path) -> list[tuple[VideoItem, VideoResult]]:
    """Every video of ``collection`` finished in the segment folder ``out``, in collection order."""
    found = []
    for item in collection.items:
        path = _record_path(out, item)
        record = _load_record(path, item) if path.exists() else None
        if record is not None:
            found.append((item, result_from_record(item, record)))
    return found


def load_output_folder(out: str | Path) -> list[tuple[VideoItem, VideoResult]]:
    """The finished videos of a ``uvis segment`` output folder, with their frames found where the records say
    (``finished_results`` with the input's collection finds them for folders written before records held it)."""
    out = Path(out)
    paths = sorted((out / "videos").glob("*.json"))
    if not paths:
        raise UserError("no finished videos (videos/*.json) in this folder", path=out,
                        fix="pass the --out folder of uvis segment (or the segment/ folder of a uvis run)")
    found = []
    for path in paths:
        record = json.loads(path.read_text())
        source = record.get("source")
        if not source:
            raise UserError("this record does not say where its frames are", path=path,
                            fix="pass the input the folder was made from with --data")
        rate = record.get("summary", {}).get("frame_rate")
        item = VideoItem(int(record["video_id"]), str(record["name"]), Path(source["path"]), source.get("file_names"),
                         fps=float(rate) if rate else None)
        found.append((item, result_from_record(item, record)))
    return sorted(found, key=lambda pair: pair[0].video_id)


def _complete_outputs(item: VideoItem, record: dict[str, Any], segmenter: Segmenter, out: Path, *,
                      write_png: bool, write_overlay: bool) -> None:
    name = safe_name(item.name)
    frames = int(record["summary"]["frames"])
    png_dir = out / "masks" / name
    need_png = write_png and (not png_dir.is_dir() or len(list(png_dir.glob("*.png"))) < frames)
    overlay = out / "overlays" / f"{name}.mp4"
    need_overlay = write_overlay and not overlay.exists()
    if not (need_png or need_overlay):
        return
    result = result_from_record(item, record, segmenter.vocabulary)
    if need_png:
        result.save_pngs(png_dir)
    if need_overlay:
        result.save_overlay(overlay)


def _summarise(records: list[dict[str, Any]], segmenter: Segmenter, *, done: int, skipped: int) -> dict[str, Any]:
    classes: dict[str, int] = {}
    for rec in records:
        for t in rec["tracks"]:
            classes[t["class"]] = classes.get(t["class"], 0) + 1
    frames = sum(r["summary"]["frames"] for r in records)
    seconds = sum(r["summary"]["seconds"] for r in records)
    return {
        "videos": len(records),
        "segmented_now": done,
        "skipped_finished": skipped,
        "frames": frames,
        "tracks": sum(len(r["tracks"]) for r in records),
        "classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 2) if seconds > 0 else None,
        "tracker": asdict(segmenter.tracker_config),
        "vocabulary": [name for _, name in segmenter.vocabulary],
        "per_video": [r["summary"] for r in records],
    }
