"""Segmenting a whole collection into one output folder, resumably (used by ``uvis segment`` and ``uvis run``).

Layout under ``out``: ``videos/<video>.json`` per finished video (written last and atomically; a rerun skips
the video), ``masks/<video>/<frame>.png``, ``overlays/<video>.mp4``, then ``results.json`` (YouTube-VIS results
of every finished video) and ``summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from uvis.data import atomic
from uvis.data.sources import Collection, VideoItem
from uvis.data.vocabulary import Vocabulary
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.jobs import Outcome, VideoJob, check_settings, run_videos
from uvis.track.segmenter import Segmenter, VideoResult
from uvis.track.video_tracks import VideoTrack

MAX_NAME = 200  # characters of a video's output name: with ".json" / ".mp4" it fits every file system's 255


def safe_name(name: str) -> str:
    """A video name usable as one file name: ASCII, and short enough for the outputs named after it (a longer
    name keeps its start and gets a digest of the whole, so distinct names stay distinct)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"
    if len(cleaned) > MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        cleaned = f"{cleaned[:MAX_NAME - 13]}-{digest}"
    return cleaned


def _record_path(out: Path, item: VideoItem) -> Path:
    return out / "videos" / f"{safe_name(item.name)}.json"


def _load_record(path: Path, item: VideoItem) -> dict[str, Any] | None:
    """The finished record of ``item``; None when there is none, it is another video's, or it is damaged (a
    damaged one is derived data: it is named on stderr and the video is segmented again)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        record = None
    if isinstance(record, dict) and (record.get("video_id") != item.video_id or record.get("name") != item.name):
        return None
    if not _well_formed(record):
        print(f"{path}: damaged record of video {item.name}; segmenting it again", file=sys.stderr)
        return None
    return record


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _well_formed(record: Any) -> bool:
    """Every field a rerun reads from a record, with its type (see ``segment_collection``)."""
    if not isinstance(record, dict):
        return False
    summary, tracks, results = record.get("summary"), record.get("tracks"), record.get("results")
    if not (isinstance(summary, dict) and isinstance(summary.get("frames"), int) and _is_number(summary.get("seconds"))
            and isinstance(tracks, list) and isinstance(results, list) and len(tracks) == len(results)):
        return False
    for t, r in zip(tracks, results, strict=True):
        if not (isinstance(t, dict) and isinstance(t.get("track_id"), int) and isinstance(t.get("category_id"), int)
                and isinstance(t.get("class"), str) and _is_number(t.get("score"))
                and isinstance(t.get("frames_seen"), int)):
            return False
        segs = r.get("segmentations") if isinstance(r, dict) else None
        if not (isinstance(segs, list) and all(isinstance(r.get(k), int) for k in ("video_id", "category_id"))
                and _is_number(r.get("score")) and len(segs) == summary["frames"]
                and all(s is None or (isinstance(s, dict) and isinstance(s.get("counts"), str)) for s in segs)):
            return False
    return isinstance(record.get("settings", {}), dict)


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
    settings: dict[str, Any],
    skip_bad: bool = False,
    group: Group | None = None,
) -> dict[str, Any]:
    """Segment ``items``, skipping finished ones; then write results.json and summary.json.

    ``settings`` (what the results depend on: model, classes, tracker) are stored in every video record; a
    finished video made with other settings is an error rather than mixed into this run's results. An
    unreadable video stops the run (its error names it), or with ``skip_bad`` is reported, listed under
    ``unreadable`` in the summary, and left for a rerun to try again. Under torchrun (``group``) each process
    segments its share of ``items`` (balanced by frame count) and rank 0 writes results.json and summary.json
    once all have finished; every process returns the summary.
    """
    group = group or Group.solo()
    names = [safe_name(i.name) for i in items]
    if len(set(names)) != len(names):
        raise UserError("two videos map to the same output name", path=collection.root,
                        fix="give the videos distinct names")

    def read(item: VideoItem) -> dict[str, Any] | None:
        path = _record_path(out, item)
        record = _load_record(path, item) if path.exists() else None
        if record is not None:
            _check_settings(record, settings, path)
        return record

    def work(item: VideoItem, bar: Any) -> dict[str, Any]:
        return _segment_one(item, segmenter, out, batch_size=batch_size, write_png=write_png,
                            write_overlay=write_overlay, settings=settings, progress=progress and not group.enabled)

    def check(outcome: Outcome[Any]) -> None:
        if outcome.failed and len(outcome.failed) == len(collection.items):
            raise UserError(f"none of the {len(outcome.failed)} videos could be read "
                            f"({next(iter(outcome.failed.values()))})", path=collection.root,
                            fix="check the input videos")

    def merge(outcome: Outcome[Any]) -> dict[str, Any]:
        return _write_collection_files(collection, read, segmenter, out, done=len(outcome.done_now),
                                       skipped=len(outcome.reused), unreadable=outcome.failed)

    job: VideoJob[dict[str, Any]] = VideoJob(
        stage="videos", part_path=lambda item: _record_path(out, item), read_part=read, work=work,
        reuse=lambda item, record: _complete_outputs(item, record, segmenter, out, write_png=write_png,
                                                     write_overlay=write_overlay),
        unit="video")
    return run_videos(items, job, out, group=group, skip_bad=skip_bad, progress=progress, check=check,
                       merge=merge).merged


def _segment_one(item: VideoItem, segmenter: Segmenter, out: Path, *, batch_size: int, write_png: bool,
                 write_overlay: bool, settings: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Segment one video, write its PNGs and overlay; returns its record (the runner writes it, last)."""
    result = segmenter.segment(item.open(), batch_size=batch_size, progress=progress)
    name = safe_name(item.name)
    try:
        if write_png:
            result.save_pngs(out / "masks" / name)
        if write_overlay:
            result.save_overlay(out / "overlays" / f"{name}.mp4")
    except BaseException:  # a full disk, Ctrl-C: no half set of PNGs left beside no record (a rerun redoes it)
        shutil.rmtree(out / "masks" / name, ignore_errors=True)
        (out / "overlays" / f"{name}.mp4").unlink(missing_ok=True)
        raise
    return {
        "video_id": item.video_id,
        "name": item.name,
        # where the frames are, so that exports (uvis export) find them without the input's path
        "source": {"path": str(item.path.resolve()), "file_names": item.file_names},
        "summary": result.summary(),
        "tracks": [{"track_id": t.track_id, "class": t.class_name, "category_id": t.category_id,
                    "score": t.score, "frames_seen": t.num_frames_seen} for t in result.tracks],
        "results": result.results_json(item.video_id, item.name),
        "settings": settings,
    }


def _write_collection_files(collection: Collection, read: Callable[[VideoItem], dict[str, Any] | None],
                            segmenter: Segmenter, out: Path, *, done: int, skipped: int,
                            unreadable: dict[str, str]) -> dict[str, Any]:
    """results.json and summary.json from the finished records of every video of the collection (this run's,
    other shards', other processes', earlier runs'). Run under the folder's lock, so that shards finishing
    together cannot drop each other's last videos."""
    records = [rec for item in collection.items if (rec := read(item)) is not None]
    atomic.write_json(out / "results.json", [r for rec in records for r in rec["results"]])
    summary = _summarise(records, segmenter, done=done, skipped=skipped)
    summary["unreadable"] = unreadable
    atomic.write_json(out / "summary.json", summary, indent=2)
    return summary


def _check_settings(record: dict[str, Any], settings: dict[str, Any], path: Path) -> None:
    """Refuse a finished video made with other settings (records from before settings were stored pass)."""
    old = record.get("settings")
    if old is not None:
        check_settings(old, settings, what="this video was segmented", folder=path, nested=False,
                       fix="use another out=FOLDER, the same settings, or delete the output folder's videos/ to redo")


def result_from_record(item: VideoItem, record: dict[str, Any], vocabulary: Vocabulary | None = None,
                       ) -> VideoResult:
    """The ``VideoResult`` of a finished video again, from its ``videos/<video>.json`` record (for new outputs)."""
    tracks = [
        VideoTrack(track_id=int(t["track_id"]), category_id=int(t["category_id"]), class_name=str(t["class"]),
                   score=float(t["score"]), segmentations=r["segmentations"], num_frames_seen=int(t["frames_seen"]))
        for t, r in zip(record["tracks"], record["results"], strict=True)
    ]
    if vocabulary is None:
        vocabulary = Vocabulary.from_pairs(sorted({(t.category_id, t.class_name) for t in tracks}))
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
                        fix="pass the output folder of uvis segment (or the segment/ folder of a uvis run)")
    found = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            record = None
        if not _well_formed(record):
            raise UserError("damaged record of a finished video", path=path,
                            fix="run uvis segment into this folder again: it redoes damaged videos")
        source = record.get("source")
        if not source:
            raise UserError("this record does not say where its frames are", path=path,
                            fix="pass the input the folder was made from as data=PATH")
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
