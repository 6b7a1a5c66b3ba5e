"""The two things every long per-video command shares: one settings check and one resumable per-video runner.

``check_settings(saved, current, may_change=..., what=..., folder=...)`` compares the settings an output folder
(or a record in it) was made with to the current ones and raises ONE ``UserError`` naming every changed setting
(``name old -> new``) and the fix. Settings listed in ``may_change`` (dotted keys for nested ones; a key covers
everything below it) may differ: paths, operational flags, a step count that extends a run. It is used by
pseudo-label (``config.json``), segment (each video's record), ``uvis run`` (each step's ``step.json``) and
training (the run's ``config.json``; ``uvis.train.trainer.RESUME_OVERRIDES`` is its may-change list).

``run_videos(videos, job, group=...)`` runs a per-video function over a collection into one output folder:

- every finished video has one part file (``job.part_path``), written atomically; a rerun skips videos whose part
  reads back (``job.read_part``: a damaged part is named on stderr by the job and its video is done again);
- under torchrun (``group``, ``uvis.distributed``) rank 0 decides what is left to do and every process takes its
  share, balanced by frame count (``Group.share``); one progress display counts the whole job;
- an unreadable video (a ``UserError`` from the per-video function) stops the job, or with ``skip_bad`` is
  reported, recorded (``job.failed_path``, when the job keeps failures on disk) and left for a rerun to retry;
- rank 0 then merges (``merge``, under the folder's lock) and every process gets its result.

The pseudo-label runner (``uvis.pseudo.collection.label_collection``, also self-training) and the segment runner
(``uvis.track.collection.segment_collection``) each give only their per-video function and part format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from uvis.data import atomic
from uvis.data.sources import VideoItem
from uvis.distributed import Group
from uvis.errors import UserError

P = TypeVar("P")  # a finished video's part (what its part file holds)
R = TypeVar("R")  # what the merge returns

_SHORT = 40  # characters of a value shown in a change (longer ones: the setting is named alone)


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Change:
    """One setting that differs: its (dotted) key, the saved value and the current one."""

    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        old, new = _shown(self.old), _shown(self.new)
        return self.key if old is None or new is None else f"{self.key} {old} -> {new}"


def _shown(value: Any) -> str | None:
    """A value as a change shows it (``repr``), or None when it is a structure or too long to read in one line."""
    if isinstance(value, (dict, list, tuple)):
        return None
    text = repr(value)
    return text if len(text) <= _SHORT else None


def _plain(settings: Mapping[str, Any]) -> Any:
    """The settings as JSON holds them (tuples become lists, keys strings), so saved and current compare."""
    return json.loads(json.dumps(settings))


def _may_change(key: str, may_change: Collection[str]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:n]) in may_change for n in range(1, len(parts) + 1))


def settings_changes(saved: Mapping[str, Any], current: Mapping[str, Any], *, may_change: Collection[str] = (),
                     nested: bool = True) -> list[Change]:
    """Every setting that differs between ``saved`` and ``current`` (sorted by key), except those that may change.

    ``nested``: compare inside sub-tables (``maskcut.tau``); otherwise each top-level value is compared whole.
    """
    def walk(old: Any, new: Any, prefix: str) -> list[Change]:
        out = []
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            name = f"{prefix}{key}"
            if _may_change(name, may_change):
                continue
            if nested and isinstance(a, dict) and isinstance(b, dict):
                out += walk(a, b, f"{name}.")
            elif a != b:
                out.append(Change(name, a, b))
        return out

    return walk(_plain(saved), _plain(current), "")


def check_settings(saved: Mapping[str, Any], current: Mapping[str, Any], *, may_change: Collection[str] = (),
                   what: str, folder: str | Path, fix: str | None = None, nested: bool = True,
                   message: Callable[[list[Change]], str] | None = None) -> None:
    """Refuse ``current`` settings that differ from the ``saved`` ones outside ``may_change``: ONE ``UserError``.

    Its line reads ``{what} with other settings (a 1 -> 2; b.c 'x' -> 'y')`` (``message`` may word it otherwise,
    given the changes), names ``folder`` and says how to fix it (``fix``; by default: a new output folder, or
    the old values).
    """
    changes = settings_changes(saved, current, may_change=may_change, nested=nested)
    if not changes:
        return
    text = message(changes) if message is not None else \
        f"{what} with other settings ({'; '.join(str(c) for c in changes)})"
    raise UserError(text, path=folder, fix=fix or "use a new output folder, or pass the settings it was made with")


# ------------------------------------------------------------------------------------------------ the runner
@dataclass
class VideoJob(Generic[P]):
    """What ``run_videos`` needs to know about one kind of per-video work.

    ``work(item, bar)`` does one video and returns its part (a ``UserError`` means the video is unreadable);
    ``unit`` is what ``bar`` counts: ``"frame"`` (``work`` updates it) or ``"video"`` (the runner does, finished
    videos included). ``reuse(item, part)`` is called for a video finished earlier (e.g. to make outputs asked
    for now but not then). ``failed_path``: where a skipped video's error is kept (None: only in the outcome).
    """

    stage: str  # the progress display's name
    part_path: Callable[[VideoItem], Path]
    read_part: Callable[[VideoItem], P | None]  # None: not finished (no part, or a damaged one, said by the job)
    work: Callable[[VideoItem, Any], P]
    write_part: Callable[[Path, P], None] = field(default=lambda path, part: atomic.write_json(path, part))
    reuse: Callable[[VideoItem, P], None] | None = None
    failed_path: Callable[[VideoItem], Path] | None = None
    unit: str = "frame"


@dataclass
class Outcome(Generic[R]):
    """What a ``run_videos`` call did, over every process of the job."""

    done_now: list[str] = field(default_factory=list)  # names of the videos done by this call
    reused: list[str] = field(default_factory=list)  # finished earlier, skipped
    failed: dict[str, str] = field(default_factory=dict)  # skipped as unreadable (``skip_bad``): name -> error
    merged: R | None = None  # what rank 0's ``merge`` returned


def recorded_failure(path: Path, item: VideoItem) -> str | None:
    """The error kept in ``path`` for a video skipped as unreadable, if it is ``item``'s."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return str(record.get("error", "")) if isinstance(record, dict) and record.get("name") == item.name else None


def run_videos(videos: Sequence[VideoItem], job: VideoJob[P], out: str | Path, *, group: Group | None = None,
               skip_bad: bool = False, progress: bool = True, redo: bool = False,
               start: Callable[[list[VideoItem]], None] | None = None,
               check: Callable[[Outcome[Any]], None] | None = None,
               merge: Callable[[Outcome[Any]], R] | None = None) -> Outcome[R]:
    """Run ``job`` over ``videos`` into ``out``, resumably and shared between the job's processes.

    ``redo``: do every video again (their parts are being discarded). ``start(mine)`` is called on every process
    once the work is planned and before any is done (``mine``: this process's videos to do; e.g. load a model
    only when there is work, record the settings). ``check(outcome)`` runs on every process once all have
    finished, before the merge touches the folder (e.g. to refuse a job where no video could be read).
    ``merge(outcome)`` runs on rank 0 under the folder's lock once
    every process has finished; its result is in the returned ``Outcome`` on every process.
    """
    group = group or Group.solo()
    out = Path(out)
    group.check_shared(out)
    by_id = {item.video_id: item for item in videos}
    finished: dict[int, P] = {}
    if group.is_main and not redo:  # rank 0's view (parts appear while others work): one plan for all
        for item in videos:
            part = job.read_part(item)
            if part is not None:
                finished[item.video_id] = part
    todo_ids, done_ids = group.broadcast(([i.video_id for i in videos if i.video_id not in finished],
                                          list(finished)))
    todo = [by_id[i] for i in todo_ids]
    done = [by_id[i] for i in done_ids]
    mine = [todo[i] for i in group.share([item.frame_count() for item in todo])]
    mine_done = [done[i] for i in group.share([item.frame_count() for item in done])]
    if start is not None:
        start(mine)
    outcome: Outcome[R] = Outcome()
    if job.unit == "video":
        total: int | None = len(todo) + len(done)
    else:
        known = [i.known_length() for i in todo]
        total = sum(k for k in known if k is not None) if all(k is not None for k in known) else None
    with group.progress(total=total, unit=job.unit, desc=job.stage, disable=not progress) as bar:
        for item in mine_done:
            if job.reuse is not None:
                part = finished.get(item.video_id)
                if part is None:  # read on rank 0 only
                    part = job.read_part(item)
                if part is not None:
                    with group.task(f"video {item.name}"):
                        job.reuse(item, part)
            outcome.reused.append(item.name)
            if job.unit == "video":
                bar.update(1)
        for item in mine:
            bar.set_postfix_str(item.name[:24])
            with group.task(f"video {item.name}"):
                try:
                    part = job.work(item, bar)
                except UserError as e:
                    if not skip_bad:
                        raise
                    if job.failed_path is not None:
                        atomic.write_json(job.failed_path(item), {"name": item.name, "error": str(e)})
                    outcome.failed[item.name] = str(e)
                    bar.write(f"skipped {item.name}: {e}")
                    if job.unit == "video":
                        bar.update(1)
                    continue
            job.write_part(job.part_path(item), part)
            if job.failed_path is not None:
                job.failed_path(item).unlink(missing_ok=True)
            outcome.done_now.append(item.name)
            if job.unit == "video":
                bar.update(1)
    everyone = group.gather((outcome.done_now, outcome.reused, outcome.failed))
    outcome.done_now = [n for ours in everyone for n in ours[0]]
    outcome.reused = [n for ours in everyone for n in ours[1]]
    outcome.failed = {n: e for ours in everyone for n, e in ours[2].items()}
    if check is not None:
        check(outcome)
    if merge is not None:
        merged = None
        if group.is_main:
            with atomic.folder_lock(out):
                merged = merge(outcome)
        outcome.merged = group.broadcast(merged)
    return outcome

