"""The Python API: segment, track and name every object of a video in a few lines.

    from uvis.track.segmenter import Segmenter
    seg = Segmenter.from_run("runs/ytvis", device="cuda")
    result = seg.segment("clip.mp4")
    result.save_json("clip.json"); result.save_overlay("clip_overlay.mp4")

A ``Segmenter`` wraps any *frame predictor* — an object with ``predict(frames) -> list[FrameDetections]``
(frames: uint8 [B, H, W, 3]) and ``vocabulary`` (list of (category id, name)) — with the online
tracker and the video-level accumulator. The video is streamed in batches, never loaded whole;
masks are RLE-encoded as they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from uvis.data import atomic, ytvis
from uvis.data import masks as mask_utils
from uvis.data.progress import progress as progress_reporter
from uvis.data.video import Video, open_video, with_next_frame, write_video
from uvis.errors import UserError
from uvis.track.tracker import Tracker, TrackerConfig
from uvis.track.types import FrameDetections
from uvis.track.video_tracks import VideoTrack, VideoTrackAccumulator


class FramePredictor(Protocol):
    """What ``Segmenter`` needs from a per-frame model."""

    vocabulary: list[tuple[int, str]]

    def predict(self, frames: np.ndarray) -> list[FrameDetections]: ...


# A predictor whose class attribute ``temporal`` is True (motion) also takes the frame after the batch,
# ``predict(frames, next_frame)`` (None after the last batch), and ``start_video()`` before each video.


@dataclass
class VideoResult:
    """Tracks of one video, and the means to save them."""

    video: Video
    tracks: list[VideoTrack]
    vocabulary: list[tuple[int, str]]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

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




OPEN_VOCABULARY_FIX = ("pick classes the model knows; free-form class names need an open-vocabulary predictor "
                       "(CLIP embeddings, as in model=none)")


def restrict_vocabulary(
    vocabulary: Sequence[tuple[int, str]], names: Sequence[str], *, fix: str = OPEN_VOCABULARY_FIX
) -> tuple[list[tuple[int, str]], list[int]]:
    """The sub-vocabulary for ``names`` and the columns of the full one it keeps (``fix``: for unknown names)."""
    by_name = {n.lower(): i for i, (_, n) in enumerate(vocabulary)}
    missing = [n for n in names if n.lower() not in by_name]
    if missing:
        known = ", ".join(n for _, n in list(vocabulary)[:20])
        raise UserError(
            f"class name(s) {', '.join(missing)} not in the model's vocabulary ({known}{', ...' if len(vocabulary) > 20 else ''})",
            fix=fix,
        )
    cols = [by_name[n.lower()] for n in names]
    return [vocabulary[c] for c in cols], cols


class Segmenter:
    """Per-frame predictor + online tracker + video-level accumulation.

    ``vocabulary``: optional class names to report. If the predictor has ``set_vocabulary(names)``
    (the CLIP-based stage-1 predictor; a trained model's predictor), it takes the names itself: an
    open-vocabulary predictor scores any names against CLIP text embeddings, a trained model without a
    CLIP head restricts itself to known names. Otherwise the names must be classes the predictor knows;
    its probabilities are restricted to them (not renormalised, so an object of another class keeps a
    low probability).
    """

    def __init__(
        self,
        frame_predictor: FramePredictor,
        tracker_config: TrackerConfig | None = None,
        vocabulary: Sequence[str] | None = None,
        top_k: int | None = 10,
    ):
        self.predictor = frame_predictor
        self.tracker_config = tracker_config or TrackerConfig()
        self.top_k = top_k
        cfg = self.tracker_config
        # The tracker ignores candidates below this; a predictor that can skip them early (a trained model's:
        # no mask upsampling for them) is told so.
        self._min_score = cfg.score_threshold if cfg.continue_threshold is None else min(cfg.score_threshold,
                                                                                         cfg.continue_threshold)
        if hasattr(frame_predictor, "min_score"):
            frame_predictor.min_score = self._min_score
        self._columns: list[int] | None = None
        if vocabulary is not None:
            names = [str(n).strip() for n in vocabulary if str(n).strip()]
            if not names:
                raise UserError("empty class list", fix="pass class names, e.g. classes=dog,skateboard", param="classes")
            if hasattr(frame_predictor, "set_vocabulary"):
                frame_predictor.set_vocabulary(names)
                self.vocabulary = list(frame_predictor.vocabulary)
            else:
                self.vocabulary, self._columns = restrict_vocabulary(frame_predictor.vocabulary, names)
        else:
            self.vocabulary = list(frame_predictor.vocabulary)

    @classmethod
    def from_run(
        cls, run_dir: str | Path, device: str | None = None, **kwargs: Any
    ) -> Segmenter:
        """A Segmenter around the trained model of a training run folder."""
        try:
            from uvis.model.predictor import FramePredictor as ModelPredictor
        except ImportError:
            raise UserError("this uvis install has no trained-model predictor (uvis.model.predictor)",
                            path=run_dir, fix="update uvis, or use model=none for the training-free path") from None
        return cls(ModelPredictor.from_run(run_dir, device), **kwargs)

    def _prepare(self, det: FrameDetections) -> FrameDetections:
        # Drop what the tracker would ignore anyway (cheap), then candidates with an empty mask: they show
        # no object in this frame (a query that found nothing). Only surviving masks are scanned.
        keep = det.scores >= self._min_score
        if bool(keep.any()):
            keep[keep.clone()] = det.masks[keep].flatten(1).any(1).to(keep.device)
        if not bool(keep.all()):
            det = det.select(keep)
        if self._columns is None:
            return det
        # Not renormalised: restricting to "dog" must not make every object 100% dog.
        probs = det.class_probs[:, self._columns]
        return FrameDetections(det.embeddings, probs, det.scores, det.masks)

    def segment(self, video: str | Path | Video, batch_size: int = 8, progress: bool = True) -> VideoResult:
        """Segment and track one video (a file, a frame folder, or an opened ``Video``)."""
        if batch_size < 1:
            raise UserError(f"batch size {batch_size}", fix="use a batch size >= 1")
        if not isinstance(video, Video):
            video = open_video(video)
        tracker = Tracker(self.tracker_config)
        acc = VideoTrackAccumulator(self.vocabulary)
        start = time.perf_counter()
        # a bar on a terminal; in a log (nohup, SLURM) a line every interval with frames/s and ETA
        bar = progress_reporter(video.num_frames, f"segment {video.name}", "frame", enabled=progress, leave=False)
        try:
            with torch.inference_mode():
                # a temporal predictor (motion) also sees the frame after each batch
                temporal = getattr(self.predictor, "temporal", False)
                if temporal:
                    self.predictor.start_video()
                for batch, following in with_next_frame(video.batches(batch_size, prefetch=True)):
                    dets = self.predictor.predict(batch, following) if temporal else self.predictor.predict(batch)
                    if len(dets) != len(batch):
                        raise RuntimeError(f"predictor returned {len(dets)} results for {len(batch)} frames")
                    for det in dets:
                        if tuple(det.masks.shape[1:]) != (video.height, video.width):
                            raise RuntimeError(f"predictor masks are {tuple(det.masks.shape[1:])}, "
                                               f"video frames {(video.height, video.width)}")
                        det = self._prepare(det)
                        acc.add(det, tracker.update(det))
                    bar.update(len(batch))
        finally:
            bar.close()
        if acc.num_frames != video.num_frames:  # container frame counts can be off: trust the decoder
            video.num_frames = acc.num_frames
            if len(video.frame_names) != acc.num_frames:
                video.frame_names = [f"{i:05d}.jpg" for i in range(acc.num_frames)]
        tracks = acc.finish(self.top_k)
        return VideoResult(video=video, tracks=tracks, vocabulary=self.vocabulary,
                           seconds=time.perf_counter() - start)
