"""Stage 1a over a whole collection: pseudo-masks for every frame of every video, resumable.

The per-frame labeller is pluggable (``LabellingJob``): MaskCut on DINO features (``pseudo_label_collection``)
or a trained model's confident predictions (``uvis.predict.self_training``) share one loop, layout and resume.

Layout of the output folder::

    DIR/config.json            what the labels are made with; a rerun with other settings is refused
    DIR/videos/<video_id>.json one part per finished video, written atomically
    DIR/videos/<video_id>.failed.json
                               with ``skip_bad``: a video that could not be read (its error); retried by reruns
    DIR/pseudo_labels.json     all parts merged (uvis.pseudo.format), once every video has its part (or failed)

A crash or Ctrl-C loses at most the video in flight; rerunning skips videos whose part exists. Shards
(``shard=(i, n)``) split the videos round-robin, so n machines can share one folder; whichever finishes
last writes the merged file (any later run with nothing left to do merges too). Under torchrun (``group``,
see ``uvis.distributed``) the processes split the videos left to do by frame count and rank 0 merges.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uvis import __version__
from uvis.data import atomic
from uvis.data.sources import Collection, VideoItem, to_ytvis_video
from uvis.data.video import with_next_frame
from uvis.data.ytvis import Category, _video
from uvis.data.ytvis import Video as YtvisVideo
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.jobs import VideoJob, check_settings, recorded_failure, run_videos, settings_changes
from uvis.pseudo.format import FrameInstance, PseudoLabels
from uvis.pseudo.maskcut import FrameMask, FusedMaskCut, MaskCut, MaskCutConfig, require_crf
from uvis.pseudo.motioncut import MotionCut, MotionCutConfig

CONFIG_NAME = "config.json"
MERGED_NAME = "pseudo_labels.json"
PART_FORMAT = 1


FEATURES = ("dino", "motion", "dino+motion")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Everything that changes the pseudo-labels (device and batch size do not, up to float rounding).

    ``features``: ``"dino"`` (MaskCut on DINO keys, the paper's stage 1) or ``"motion"`` (MotionCut on residual
    motion, no weights needed; ``uvis.pseudo.motioncut``) or ``"dino+motion"`` (MaskCut on the DINO graph fused
    with the motion graph, ``motion_weight`` of it motion; ``uvis.pseudo.maskcut.FusedMaskCut``).
    """

    backbone: str = "dino_vitb8"
    maskcut: MaskCutConfig = field(default_factory=MaskCutConfig)
    amp: bool = True  # bf16/fp16 autocast for the DINO forward on GPU (the eigensolve is always fp32)
    features: str = "dino"
    motion: MotionCutConfig = field(default_factory=MotionCutConfig)
    motion_weight: float = 0.5  # dino+motion: the motion graph's share of the fused graph

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise UserError(f"unknown stage-1 features '{self.features}'", fix=f"use one of {', '.join(FEATURES)}")
        if not 0.0 <= self.motion_weight <= 1.0:
            raise UserError(f"motion weight {self.motion_weight}", fix="use motion_weight between 0 and 1",
                            param="motion_weight")

    def to_json(self) -> dict[str, Any]:
        if self.features == "motion":
            return {"stage": "motioncut", "features": "motion", "motion": self.motion.to_json()}
        out = {"stage": "maskcut", "backbone": self.backbone, "amp": self.amp, "maskcut": self.maskcut.to_json()}
        if self.features == "dino+motion":
            out |= {"features": self.features, "motion_weight": self.motion_weight,
                    "motion": self.motion.motion.to_json(), "motion_sigma": self.motion.sigma}
        return out


# [B, H, W, 3] uint8 RGB frames -> per frame, its masks
FrameLabeller = Callable[[np.ndarray], list[list[FrameMask]]]


@dataclass
class LabellingJob:
    """What the collection runner needs to know about one way of pseudo-labelling frames."""

    stage: str  # names the stats entry and the progress bar ("maskcut", "self-training")
    description: str  # info.description of the merged file
    settings: dict[str, Any]  # everything that changes the labels; recorded in config.json, checked on resume
    make_labeller: Callable[[], FrameLabeller]  # called only when some video is left to do (loads the model)
    categories: list[Category] = field(default_factory=list)  # of the merged file (empty: class-agnostic)
    # the labeller looks one frame ahead (MotionCut): it is called as labeller(batch, next_frame) and has a
    # start_video() called before each video
    temporal: bool = False


def part_path(out_dir: Path, video_id: int) -> Path:
    return out_dir / "videos" / f"{video_id}.json"


def failed_path(out_dir: Path, video_id: int) -> Path:
    return out_dir / "videos" / f"{video_id}.failed.json"


def _failure(out_dir: Path, item: VideoItem) -> str | None:
    """The error recorded for a video skipped as unreadable, if any."""
    return recorded_failure(failed_path(out_dir, item.video_id), item)


def _saved_settings(out_dir: Path) -> dict[str, Any] | None:
    """The settings the folder's ``config.json`` records; None when there is none, ``{}`` when it is unreadable
    (every setting then counts as changed)."""
    cfg_path = out_dir / CONFIG_NAME
    if not cfg_path.exists():
        return None
    try:
        old = json.loads(cfg_path.read_text())
    except (OSError, ValueError, RecursionError):
        old = None
    return old if isinstance(old, dict) else {}


def _check_folder(out_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse a folder whose parts were made with other settings (one line naming every change)."""
    old = _saved_settings(out_dir)
    if old is not None:
        check_settings(old, settings, what="the folder holds pseudo-labels made", folder=out_dir,
                       fix="use another out=FOLDER, the same settings, or overwrite=True to discard them")


def _is_stale(out_dir: Path, settings: dict[str, Any]) -> bool:
    old = _saved_settings(out_dir)
    return old is not None and bool(settings_changes(old, settings))


def prepare_out_dir(out_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Record the settings, or check they match the ones the folder's parts were made with."""
    if _is_stale(out_dir, settings):
        if not overwrite:
            _check_folder(out_dir, settings)
        for p in (out_dir / "videos").glob("*.json"):
            p.unlink()
        (out_dir / MERGED_NAME).unlink(missing_ok=True)
    atomic.write_json(out_dir / CONFIG_NAME, json.loads(json.dumps(settings)), indent=2)


def _read_part(path: Path) -> dict[str, Any] | None:
    """A finished video's part, or None when there is none or it is damaged (derived data: a damaged part is
    named on stderr, and its video is labelled again)."""
    try:
        part = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        part = None
    if isinstance(part, dict) and part.get("format") == PART_FORMAT and _well_formed(part, path):
        return part
    print(f"{path}: damaged pseudo-label part; labelling its video again", file=sys.stderr)
    return None


def _well_formed(part: dict[str, Any], path: Path) -> bool:
    """The part's video entry and annotations have every field the merge reads, with its type."""
    try:
        video = _video(part.get("video"), "video", path)
        annotations = part.get("annotations")
        if not isinstance(annotations, list):
            return False
        for a in annotations:
            inst = FrameInstance.from_json(a, "annotation", path)
            if inst.video_id != video.id or not 0 <= inst.frame_index < video.length:
                return False
    except UserError:
        return False
    return True


def _finished_part(out_dir: Path, item: VideoItem) -> dict[str, Any] | None:
    """The part of ``item`` if it is finished (a part of another video under its id does not count)."""
    part = _read_part(part_path(out_dir, item.video_id))
    return part if part is not None and part["video"].get("name") == item.name else None


def label_video(item: VideoItem, labeller: FrameLabeller, batch_size: int, progress: Any = None, *,
                temporal: bool = False) -> dict[str, Any]:
    """Run the labeller on every frame of one video; returns its part (YouTube-VIS video entry + annotations)."""
    video = item.open()
    entry = to_ytvis_video(item, video)
    annotations: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    frame_index = 0
    if temporal:  # MotionCut, FusedMaskCut: also see the frame after each batch
        labeller.start_video()  # type: ignore[attr-defined]
    for batch, following in with_next_frame(video.batches(batch_size, prefetch=True)):
        for frame_masks in (labeller(batch, following) if temporal else labeller(batch)):  # type: ignore[call-arg]
            for m in frame_masks:
                inst = FrameInstance(video_id=item.video_id, frame_index=frame_index, segmentation=m.rle,
                                     score=m.score, category_id=m.category_id, class_prob=m.class_prob)
                annotations.append(inst.to_json())
            frame_index += 1
        if progress is not None:
            progress.update(len(batch))
    if frame_index != entry.length and item.file_names is None and item.path.is_file():
        # container frame counts can be off by a few (damaged tail, odd muxing): trust the decoder
        entry.file_names = [f"{item.name}/{i:05d}.jpg" for i in range(frame_index)]
    if frame_index != entry.length or frame_index == 0:
        raise UserError(f"decoded {frame_index} frames but the video lists {entry.length}", path=item.path,
                        fix="re-encode the video or check its frame list")
    return {"format": PART_FORMAT, "video": entry.to_json(), "annotations": annotations,
            "seconds": round(time.perf_counter() - t0, 3)}


def merge_parts(collection: Collection, out_dir: Path, job: LabellingJob) -> Path | None:
    """Write ``pseudo_labels.json`` from the parts, if every video of the collection has one (or was skipped as
    unreadable: it is then left out and listed under ``info.skipped_videos``)."""
    parts, skipped = [], []
    for item in collection.items:
        part = _read_part(part_path(out_dir, item.video_id))
        if part is None:
            error = _failure(out_dir, item)
            if error is None:
                return None
            skipped.append({"name": item.name, "error": error})
            continue
        parts.append(part)
    if not parts:
        return None
    videos, instances = [], []
    for part in parts:
        v = part["video"]
        videos.append(YtvisVideo(id=int(v["id"]), width=int(v["width"]), height=int(v["height"]),
                                 file_names=list(v["file_names"]), name=str(v.get("name", ""))))
        instances += [FrameInstance.from_json(a, "annotation", out_dir) for a in part["annotations"]]
    frames = sum(v.length for v in videos)
    labels = PseudoLabels(
        videos=videos,
        instances=instances,
        categories=list(job.categories),
        info={"description": job.description, "uvis_version": __version__,
              "config": job.settings, "source": str(collection.root),
              **({"skipped_videos": skipped} if skipped else {})},
        stats={job.stage: {"videos": len(videos), "frames": frames, "masks": len(instances),
                           "masks_per_frame": round(len(instances) / max(frames, 1), 4),
                           "seconds": round(sum(float(p.get("seconds", 0)) for p in parts), 3)}},
    )
    out = out_dir / MERGED_NAME
    labels.save(out)
    return out


def label_collection(
    collection: Collection,
    out_dir: str | Path,
    job: LabellingJob,
    *,
    batch_size: int = 16,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    skip_bad: bool = False,
    group: Group | None = None,
) -> Path:
    """Label every video of ``collection`` (or of one shard) into ``out_dir`` with ``job``'s labeller.

    Returns the path of the merged ``pseudo_labels.json``; it exists only once every video of the collection
    has its part (other shards may still be running). By default an unreadable video stops the run (its error
    names it); with ``skip_bad`` it is recorded as failed, reported, left out of the merged file, and the rest
    go on (a rerun tries it again). Under torchrun (``group``) each process labels its share of the videos left
    to do, balanced by frame count; rank 0 merges once all have finished.
    """
    group = group or Group.solo()
    out_dir = Path(out_dir)
    if batch_size < 1:
        raise UserError(f"bad batch size {batch_size}", fix="use batch_size=1 or more", param="batch_size")
    stale = _is_stale(out_dir, job.settings)
    if stale and not overwrite:
        _check_folder(out_dir, job.settings)  # before loading any model
    items = collection.shard(*shard) if shard is not None else collection.items
    new_folder = not (out_dir / CONFIG_NAME).exists()
    labeller: list[FrameLabeller] = []

    def start(mine: list[VideoItem]) -> None:
        # The labeller (weights, flags) is made before the folder is touched: a run that fails here leaves no
        # config.json behind to refuse the corrected rerun.
        if mine:
            labeller.append(job.make_labeller())
        if group.is_main:
            prepare_out_dir(out_dir, job.settings, overwrite)
        group.barrier()  # parts are written only after --overwrite cleared the old ones

    video_job: VideoJob[dict[str, Any]] = VideoJob(
        stage=job.stage, part_path=lambda item: part_path(out_dir, item.video_id),
        read_part=lambda item: _finished_part(out_dir, item),
        work=lambda item, bar: label_video(item, labeller[0], batch_size, bar, temporal=job.temporal),
        failed_path=lambda item: failed_path(out_dir, item.video_id))
    try:
        outcome = run_videos(items, video_job, out_dir, group=group, skip_bad=skip_bad, progress=progress,
                             redo=stale, start=start, merge=lambda _: merge_parts(collection, out_dir, job))
    except UserError:
        # the first video of a new folder is unreadable (truncated, audio only ...): no part records these
        # settings, so the corrected rerun, with any settings, must not be refused for them (an interrupted
        # first video keeps them: a shard still at work protects the folder)
        if group.is_main and new_folder and not any((out_dir / "videos").glob("*.json")):
            (out_dir / CONFIG_NAME).unlink(missing_ok=True)
            for folder in (out_dir / "videos", out_dir):  # and the folders, if that leaves them empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    if outcome.merged is None and all(_failure(out_dir, i) for i in collection.items):
        raise UserError(f"none of the {len(collection.items)} videos could be read (errors in videos/*.failed.json)",
                        path=out_dir, fix="check the input videos")
    return out_dir / MERGED_NAME


def skipped_videos(collection: Collection, out_dir: str | Path) -> dict[str, str]:
    """Videos of ``collection`` currently recorded as unreadable in ``out_dir``: name -> error."""
    found = {item.name: _failure(Path(out_dir), item) for item in collection.items}
    return {name: error for name, error in found.items() if error is not None}


def pseudo_label_collection(
    collection: Collection,
    out_dir: str | Path,
    config: PseudoLabelConfig | None = None,
    *,
    weights: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 16,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    skip_bad: bool = False,
    group: Group | None = None,
) -> Path:
    """MaskCut pseudo-labels for every video of ``collection`` (or of one shard) into ``out_dir``.

    Returns the path of the merged ``pseudo_labels.json`` (see ``label_collection``).
    """
    config = config or PseudoLabelConfig()
    if config.features == "motion":
        job = LabellingJob(stage="motioncut", description="uvis pseudo-labels (MotionCut on residual motion)",
                           settings=config.to_json(), make_labeller=lambda: MotionCut(config.motion),
                           temporal=True)
        return label_collection(collection, out_dir, job, batch_size=batch_size, shard=shard, overwrite=overwrite,
                                progress=progress, skip_bad=skip_bad, group=group)
    if config.maskcut.crf:
        require_crf()

    from uvis.features.backbones import resolve_backbone
    from uvis.features.dino import DinoFeatures, note_cpu_speed
    from uvis.features.weights import provenance

    weights_file = resolve_backbone(config.backbone, weights)  # before any work; recorded (sha256) in config.json

    def make() -> FrameLabeller:
        dev = group.device(device) if group is not None else device
        features = DinoFeatures(config.backbone, weights_file, dev, amp=config.amp)
        if progress and (group is None or group.is_main):  # on a CPU: how long this will take, what is faster
            note_cpu_speed(features.device, config.backbone, config.maskcut.resolution, collection.count_frames())
        if config.features == "dino+motion":
            return FusedMaskCut(features, config.maskcut, motion=config.motion.motion,
                                motion_weight=config.motion_weight, sigma=config.motion.sigma)
        return MaskCut(features, config.maskcut)

    job = LabellingJob(stage="maskcut", description="uvis pseudo-labels (MaskCut on DINO features)",
                       settings={**config.to_json(), "weights": provenance(weights_file)}, make_labeller=make,
                       temporal=config.features == "dino+motion")  # the fused graph also sees the next frame
    return label_collection(collection, out_dir, job, batch_size=batch_size, shard=shard, overwrite=overwrite,
                            progress=progress, skip_bad=skip_bad, group=group)
