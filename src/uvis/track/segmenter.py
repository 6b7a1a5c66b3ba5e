"""The Python API: segment, track and name every object of a video in a few lines.

    import uvis
    seg = uvis.build_segmenter("runs/ytvis", device="cuda")       # or "none": the training-free path
    result = seg.segment("clip.mp4")                                # the whole video: final tracks
    result.save_json("clip.json"); result.save_overlay("clip_overlay.mp4")
    for frame in seg.track(camera_frames()):                        # a stream: one FrameResult per frame
        show(frame.index, frame.track_ids, frame.masks, frame.class_names)

A ``Segmenter`` wraps a ``Predictor`` (``uvis.predict.base``) with the online tracker and the video-level
accumulator. Frames are read in batches, never loaded whole; the video's masks are RLE-encoded as they arrive.

``track(source)`` is a generator (the shape of SAM 2's ``propagate_in_video``): from a video file, a frame folder,
an opened ``Video`` or any iterable of HxWx3 uint8 RGB frames, it yields one ``FrameResult`` per frame as soon as
its batch is done. A track's id is fixed when it starts, but its class and score are decided by a vote over all
the frames it is seen in, so a frame's ``class_names``/``scores`` are the *current* standing of its tracks (final
only at the end of the video), and ``segment`` keeps only the ``top_k`` best tracks, which the stream cannot
know yet. ``segment(video)`` runs the same loop and returns the ``VideoResult`` of final, ranked tracks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uvis.data import atomic, ytvis
from uvis.data import masks as mask_utils
from uvis.data.progress import progress as progress_reporter
from uvis.data.video import Video, checked_frames, open_video, stacked, with_next_frame, write_video
from uvis.data.vocabulary import Vocabulary, class_names
from uvis.errors import UserError
from uvis.predict.base import Predictor
from uvis.predict.types import FrameDetections
from uvis.track.tracker import Tracker, TrackerConfig
from uvis.track.video_tracks import VideoTrack, VideoTrackAccumulator

FrameSource = str | Path | Video | Iterable[np.ndarray]


@dataclass
class FrameResult:
    """The tracked objects of one frame of a stream (``Segmenter.track``).

    index: the frame's position in the stream (0-based);
    track_ids: [N] int64, the tracks seen in this frame (the ids of ``VideoResult`` and of the id PNGs);
    masks: [N, H, W] bool, their masks in this frame (raw masks; ``uvis.data.masks.encode`` gives RLE);
    category_ids, class_names: each track's class by the vote so far (final at the end of the video);
    scores: [N] float, each track's score so far (mean class probability x mean detection score, as in the
    final tracks).
    """

    index: int
    track_ids: np.ndarray
    masks: np.ndarray
    category_ids: list[int]
    class_names: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass
class VideoResult:
    """Tracks of one video, and the means to save them."""

    video: Video
    tracks: list[VideoTrack]
    vocabulary: Vocabulary
    seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        return self.video.num_frames

    @property
    def fps(self) -> float:
        """Frames processed per second (prediction + tracking + encoding)."""
        return self.num_frames / self.seconds if self.seconds > 0 else float("nan")

    def to_ytvis(self, video_id: int = 1) -> list[ytvis.Track]:
        return [t.to_ytvis(video_id) for t in self.tracks]

    def summary(self) -> dict[str, Any]:
        return {
            "video": self.video.name,
            "frames": self.num_frames,
            "size": [self.video.height, self.video.width],
            "tracks": len(self.tracks),
            "classes": sorted({t.class_name for t in self.tracks}),
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2) if self.seconds > 0 else None,
            "frame_rate": round(self.video.fps, 3),  # of the video itself (playback; the overlay's)
        }

    def results_json(self, video_id: int = 1, video_name: str | None = None) -> list[dict[str, Any]]:
        """YouTube-VIS results ({video_id, category_id, score, segmentations}), each with its ``track_id`` and
        the ``video`` name (default: the video's own); the official tools and ``uvis eval`` ignore those two."""
        name = self.video.name if video_name is None else video_name
        return [t.to_result_json(video_id, name) for t in self.tracks]

    def save_json(self, path: str | Path, video_id: int = 1) -> Path:
        """``results_json`` written atomically."""
        atomic.write_json(path, self.results_json(video_id))
        return Path(path)

    def id_maps(self) -> Iterator[np.ndarray]:
        """Per frame, an HxW map of track ids (0 = background; the higher-scored track wins overlaps)."""
        from uvis.data.overlay import instance_id_map

        h, w = self.video.height, self.video.width
        for t in range(self.num_frames):
            present = [tr for tr in self.tracks if tr.segmentations[t] is not None]  # tracks are best-first
            masks = np.stack([mask_utils.decode(tr.segmentations[t]) for tr in present]) if present else \
                np.zeros((0, h, w), bool)
            yield instance_id_map(masks, [tr.track_id for tr in present], h, w)

    def save_pngs(self, folder: str | Path) -> Path:
        """One instance-id PNG per frame (DAVIS-style palette PNG), named after the frame."""
        from uvis.data.overlay import save_id_png

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, id_map in zip(self.frame_stems(), self.id_maps(), strict=True):
            save_id_png(folder / f"{name}.png", id_map)
        return folder

    def frame_stems(self) -> list[str]:
        return [Path(n).stem for n in self.video.frame_names]

    def draw_frame(self, t: int, frame: np.ndarray, width: int | None = None) -> np.ndarray:
        """Frame ``t`` with its tracks' coloured masks and labels (track id, class, score); ``width``: drawn on
        the frame scaled to that width, so that the labels are sized for it (contact sheets)."""
        from uvis.data.overlay import draw_overlay
        from uvis.data.video import resize

        if width is not None and width != frame.shape[1]:
            frame = resize(frame, (max(1, round(frame.shape[0] * width / frame.shape[1])), width))
        present = [tr for tr in reversed(self.tracks) if tr.segmentations[t] is not None]  # best drawn last
        if not present:
            return frame
        masks = np.stack([mask_utils.decode(tr.segmentations[t]) for tr in present])
        labels = [f"{tr.track_id} {tr.class_name} {tr.score:.2f}" for tr in present]
        return draw_overlay(frame, masks, [tr.track_id for tr in present], labels)

    def overlay_frames(self) -> Iterator[np.ndarray]:
        """The video again (streamed from its source) with coloured masks, track ids and class names."""
        for t, frame in enumerate(self.video):
            yield self.draw_frame(t, frame)

    def save_overlay(self, path: str | Path) -> Path:
        """An mp4 of the overlay, at the source's frame rate; written atomically."""
        if Path(path).resolve() == self.video.path.resolve():  # the overlay is drawn from it: it would be lost
            raise UserError("the overlay would overwrite the input video", path=path, fix="save it under another name")
        return write_video(path, self.overlay_frames(), fps=self.video.fps)


class Segmenter:
    """Per-frame predictor + online tracker + video-level accumulation.

    ``classes``: optional class names to report (a list, ``"a,b,c"`` or a file with one name per line); the Segmenter holds ``predictor.with_vocabulary(classes)`` (an
    open-vocabulary predictor scores any names against CLIP text embeddings, a closed one keeps the columns of
    known names, not renormalised), and the predictor given stays as it was.
    """

    def __init__(
        self,
        predictor: Predictor,
        tracker_config: TrackerConfig | None = None,
        classes: str | Path | Sequence[str] | None = None,
        top_k: int | None = 10,
    ):
        self.tracker_config = tracker_config or TrackerConfig()
        self.top_k = top_k
        cfg = self.tracker_config
        # The tracker ignores candidates below this; the predictor may skip them early (a trained model's: no
        # mask upsampling for them). Set on this Segmenter's own predictor (a copy: the models stay shared).
        self._min_score = cfg.score_threshold if cfg.continue_threshold is None else min(cfg.score_threshold,
                                                                                         cfg.continue_threshold)
        if isinstance(classes, (str, Path)):  # "a,b,c" or a file of names, never the letters of a string
            classes = class_names(classes)
        self.predictor = predictor.with_vocabulary(classes) if classes is not None else predictor.copy()
        self.predictor.min_score = self._min_score

    @property
    def vocabulary(self) -> Vocabulary:
        return self.predictor.vocabulary

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | None = None, **kwargs: Any) -> Segmenter:
        """A Segmenter around the trained model of a training run folder (``classes``, ``tracker_config``,
        ``top_k`` as for the constructor)."""
        from uvis.predict.trained import TrainedPredictor

        return cls(TrainedPredictor.from_run(run_dir, device), **kwargs)

    def _prepare(self, det: FrameDetections) -> FrameDetections:
        # Drop what the tracker would ignore anyway (cheap), then candidates with an empty mask: they show
        # no object in this frame (a query that found nothing). Only surviving masks are scanned.
        keep = det.scores >= self._min_score
        if bool(keep.any()):
            keep[keep.clone()] = det.masks[keep].flatten(1).any(1).to(keep.device)
        return det if bool(keep.all()) else det.select(keep)

    def track(self, source: FrameSource, *, batch_size: int = 8, progress: bool = True) -> Iterator[FrameResult]:
        """One ``FrameResult`` per frame of ``source`` (a video file, a frame folder, an opened ``Video`` or any
        iterable of HxWx3 uint8 RGB frames), yielded as each batch of ``batch_size`` frames is done."""
        _check_batch(batch_size)
        if isinstance(source, (str, Path)):
            source = open_video(source)
        if isinstance(source, Video):
            batches = source.batches(batch_size, prefetch=True)
            total: int | None = source.num_frames
            name = source.name
        else:
            batches = stacked(checked_frames(source), batch_size)
            total, name = (len(source), "frames") if isinstance(source, np.ndarray) else (None, "frames")
        acc = VideoTrackAccumulator(self.vocabulary)
        yield from self._stream(batches, acc, total, name, progress)

    def _stream(self, batches: Iterator[np.ndarray], acc: VideoTrackAccumulator, total: int | None, name: str,
                progress: bool) -> Iterator[FrameResult]:
        """Predict, track and accumulate batch by batch; yield each frame's tracked objects."""
        tracker = Tracker(self.tracker_config)
        # a bar on a terminal; in a log (nohup, SLURM) a line every interval with frames/s and ETA
        bar = progress_reporter(total, f"segment {name}", "frame", enabled=progress, leave=False)
        try:
            # a temporal predictor (motion) also sees the frame after each batch (read one batch ahead); the others
            # get each batch as it comes (no added latency on a live source)
            if self.predictor.temporal:
                self.predictor.start_video()
            paired = with_next_frame(batches) if self.predictor.temporal else ((b, None) for b in batches)
            for batch, following in paired:
                with torch.inference_mode():  # not across the yields: the caller's code runs outside it
                    frames = self._batch(batch, following, tracker, acc)
                bar.update(len(batch))
                yield from frames
        finally:
            bar.close()

    def _batch(self, batch: np.ndarray, following: np.ndarray | None, tracker: Tracker,
               acc: VideoTrackAccumulator) -> list[FrameResult]:
        dets = self.predictor.predict(batch, following)
        if len(dets) != len(batch):
            raise RuntimeError(f"predictor returned {len(dets)} results for {len(batch)} frames")
        out = []
        for det in dets:
            if tuple(det.masks.shape[1:]) != tuple(batch.shape[1:3]):
                raise RuntimeError(f"predictor masks are {tuple(det.masks.shape[1:])}, "
                                   f"video frames {tuple(batch.shape[1:3])}")
            det = self._prepare(det)
            tracked = tracker.update(det)
            index = acc.num_frames
            masks = acc.add(det, tracked)
            ids = np.asarray(tracked.track_ids, np.int64)
            standing = [acc.standing(int(t)) for t in ids]
            out.append(FrameResult(index=index, track_ids=ids, masks=masks, category_ids=[s[0] for s in standing],
                                   class_names=[s[1] for s in standing],
                                   scores=np.array([s[2] for s in standing], np.float64)))
        return out

    def segment(self, video: str | Path | Video, batch_size: int = 8, progress: bool = True) -> VideoResult:
        """Segment and track one video (a file, a frame folder, or an opened ``Video``): its final tracks."""
        _check_batch(batch_size)
        if not isinstance(video, Video):
            video = open_video(video)
        acc = VideoTrackAccumulator(self.vocabulary)
        start = time.perf_counter()
        for _ in self._stream(video.batches(batch_size, prefetch=True), acc, video.num_frames, video.name, progress):
            pass
        if acc.num_frames != video.num_frames:  # container frame counts can be off: trust the decoder
            video.num_frames = acc.num_frames
            if len(video.frame_names) != acc.num_frames:
                video.frame_names = [f"{i:05d}.jpg" for i in range(acc.num_frames)]
        tracks = acc.finish(self.top_k)
        return VideoResult(video=video, tracks=tracks, vocabulary=self.vocabulary,
                           seconds=time.perf_counter() - start)


def _check_batch(batch_size: int) -> None:
    if batch_size < 1:
        raise UserError(f"batch size {batch_size}", fix="use a batch size >= 1")
