"""A results folder as a FiftyOne video dataset: one video sample per video, per-frame instances.

Each frame's ``instances`` field is a ``fo.Detections`` whose detections have the object's box (relative
[x, y, w, h]), its mask (cropped to the box), ``label`` (class name), ``confidence`` (track score) and
``index`` (the uvis track id; FiftyOne's app links the frames of an object by it). Samples carry the video
metadata (frame rate, size, frame count), so FiftyOne needs no ffprobe to read them.

The dataset is written with FiftyOne's own exporter (``fo.types.FiftyOneDataset``, media copied in), so it
loads anywhere with ``fo.Dataset.from_dir(OUT, dataset_type=fo.types.FiftyOneDataset)``; frame folders are
encoded to mp4 at their frame rate first, since FiftyOne's video samples are video files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from uvis.data import masks as mask_utils
from uvis.data.progress import progress
from uvis.data.sources import VideoItem
from uvis.data.video import write_video
from uvis.errors import UserError
from uvis.export import require
from uvis.track.collection import safe_name
from uvis.track.segmenter import VideoResult

FIELD = "instances"


def _detection(fo: Any, rle: dict, track: Any, h: int, w: int) -> Any:
    mask = mask_utils.decode(rle)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return fo.Detection(label=track.class_name, bounding_box=[x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
                        mask=mask[y0:y1, x0:x1], confidence=float(track.score), index=int(track.track_id))


def build_dataset(results: list[tuple[VideoItem, VideoResult]], media_dir: Path, *, show_progress: bool = True,
                  ) -> Any:
    """A (temporary) ``fo.Dataset`` of ``results``; frame-folder videos are encoded into ``media_dir``."""
    fo = require("fiftyone")
    dataset = fo.Dataset()
    total = sum(r.num_frames for _, r in results)
    samples = []
    with progress(total, "fiftyone export", "frame", enabled=show_progress) as bar:
        for item, result in results:
            video = result.video
            if video.path.is_dir():  # a frame folder: FiftyOne's video samples are video files
                path = write_video(media_dir / f"{safe_name(item.name)}.mp4", iter(video), fps=video.fps)
            else:
                path = video.path
            sample = fo.Sample(filepath=str(Path(path).resolve()), video=item.name, uvis_video_id=item.video_id)
            sample.metadata = fo.VideoMetadata(frame_width=video.width, frame_height=video.height,
                                               frame_rate=float(video.fps), total_frame_count=result.num_frames,
                                               duration=result.num_frames / float(video.fps))
            for t in range(result.num_frames):
                dets = [_detection(fo, tr.segmentations[t], tr, video.height, video.width)
                        for tr in result.tracks if tr.segmentations[t] is not None]
                sample.frames[t + 1] = fo.Frame(**{FIELD: fo.Detections(detections=dets)})
                bar.update(1)
            samples.append(sample)
    dataset.add_samples(samples)
    return dataset


def export_fiftyone(results: list[tuple[VideoItem, VideoResult]], out: str | Path, *, name: str | None = None,
                    show_progress: bool = True) -> Path:
    """Write ``results`` as a FiftyOne dataset folder ``out`` (see the module docstring); with ``name``, the
    dataset is also kept in the local FiftyOne database under that name (``fiftyone app launch`` shows it)."""
    fo = require("fiftyone")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError("the FiftyOne export folder is not empty", path=out, fix="pass a new out=FOLDER")
    if name is not None and fo.dataset_exists(name):
        raise UserError(f"a FiftyOne dataset named '{name}' exists already", fix="pass another name=NAME, or delete it "
                        f"with: python -c \"import fiftyone as fo; fo.delete_dataset('{name}')\"")
    with tempfile.TemporaryDirectory() as media:
        dataset = build_dataset(results, Path(media), show_progress=show_progress)
        try:
            dataset.export(export_dir=str(out), dataset_type=fo.types.FiftyOneDataset, export_media=True)
        finally:
            dataset.delete()
    if name is not None:  # the copy in the database points at the exported media, which outlives the temp folder
        fo.Dataset.from_dir(dataset_dir=str(out), dataset_type=fo.types.FiftyOneDataset, name=name, persistent=True)
    return out
