"""Video-level tracks, accumulated while the video streams past.

The tracker says which detection continues which track; this module keeps what the output
needs and nothing more: per track, its masks as compressed RLE (encoded as each frame arrives,
so a long video never holds raw masks), the running sum of its class probabilities and
detection scores, and how many frames it was seen in.

Scoring (at the end of the video), per track over the frames it was detected in:

- ``class = argmax(mean class probability)``;
- ``score = mean_prob[class] * mean detection score``. The class probability says *what* the
  object is, the detection score *whether* it is one; multiplying them (as Mask2Former does for
  per-frame instances) ranks confident objects of a confident class first, which is what AP wants.

Only the ``top_k`` best tracks of a video are returned (ranked by score), like MinVIS's top-10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.data import ytvis
from uvis.data.masks import RLE
from uvis.predict.types import FrameDetections
from uvis.track.tracker import FrameTracks


@dataclass
class VideoTrack:
    """One tracked object of a video, ready to be saved."""

    track_id: int
    category_id: int
    class_name: str
    score: float
    segmentations: list[RLE | None]  # one per frame, None where the object was not detected
    num_frames_seen: int
    class_scores: list[float] = field(default_factory=list)  # mean probability of every class

    def to_ytvis(self, video_id: int) -> ytvis.Track:
        return ytvis.Track(video_id=video_id, category_id=self.category_id, segmentations=self.segmentations,
                           id=self.track_id, score=self.score)

    def to_result_json(self, video_id: int, video_name: str | None = None) -> dict[str, Any]:
        """The YouTube-VIS result entry (the four fields the official tools read) plus ``track_id`` (the value of
        this track in the id PNGs) and, when given, the ``video`` name (the name of its PNG folder and overlay)."""
        entry: dict[str, Any] = self.to_ytvis(video_id).to_result_json()
        if video_name is not None:
            entry["video"] = video_name
        entry["track_id"] = self.track_id
        return entry


@dataclass
class _Accum:
    masks: dict[int, RLE]
    prob_sum: np.ndarray
    score_sum: float = 0.0
    count: int = 0


class VideoTrackAccumulator:
    """Collects tracked detections frame by frame; ``finish`` turns them into ranked video tracks.

    ``vocabulary`` is the list of (category id, name) matching the columns of ``class_probs``.
    """

    def __init__(self, vocabulary: Sequence[tuple[int, str]]):
        self.vocabulary = list(vocabulary)  # (category id, name) pairs: a list or a Vocabulary
        if not self.vocabulary:
            raise ValueError("VideoTrackAccumulator needs a non-empty vocabulary")
        self._tracks: dict[int, _Accum] = {}
        self._num_frames = 0

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def add(self, detections: FrameDetections, tracked: FrameTracks) -> np.ndarray:
        """Record one frame: ``tracked`` is the tracker's output for these ``detections``. Returns the [N, H, W]
        bool masks of the tracked detections, in the order of ``tracked.track_ids``."""
        frame = self._num_frames
        self._num_frames += 1
        if len(tracked) == 0:
            return np.zeros((0, *detections.masks.shape[1:]), bool)
        idx = torch.as_tensor(tracked.indices, dtype=torch.long, device=detections.masks.device)
        masks = detections.masks[idx].detach().cpu().numpy().astype(bool)
        probs = detections.class_probs[idx].detach().float().cpu().numpy()
        scores = detections.scores[idx].detach().float().cpu().numpy()
        if probs.shape[1] != len(self.vocabulary):
            raise ValueError(f"class_probs has {probs.shape[1]} columns but the vocabulary {len(self.vocabulary)}")
        rles = mask_utils.encode_many(masks)
        for j, tid in enumerate(tracked.track_ids.tolist()):
            acc = self._tracks.get(tid)
            if acc is None:
                acc = self._tracks[tid] = _Accum(masks={}, prob_sum=np.zeros(len(self.vocabulary), np.float64))
            acc.masks[frame] = rles[j]
            acc.prob_sum += probs[j]
            acc.score_sum += float(scores[j])
            acc.count += 1
        return masks

    def standing(self, track_id: int) -> tuple[int, str, float]:
        """A track's (category id, class name, score) from the frames seen so far; final once the video ends."""
        acc = self._tracks[track_id]
        c, score, _ = self._vote(acc)
        cid, name = self.vocabulary[c]
        return int(cid), str(name), score

    @staticmethod
    def _vote(acc: _Accum) -> tuple[int, float, np.ndarray]:
        mean_probs = acc.prob_sum / acc.count
        c = int(np.argmax(mean_probs))
        return c, float(mean_probs[c]) * (acc.score_sum / acc.count), mean_probs

    def finish(self, top_k: int | None = 10) -> list[VideoTrack]:
        """Score and rank every track; keep the ``top_k`` best (all when None)."""
        out: list[VideoTrack] = []
        for tid, acc in self._tracks.items():
            c, score, mean_probs = self._vote(acc)
            segs: list[RLE | None] = [acc.masks.get(t) for t in range(self._num_frames)]
            cid, name = self.vocabulary[c]
            out.append(VideoTrack(track_id=tid, category_id=int(cid), class_name=str(name), score=score,
                                  segmentations=segs, num_frames_seen=acc.count,
                                  class_scores=[float(p) for p in mean_probs]))
        out.sort(key=lambda t: (-t.score, t.track_id))
        return out if top_k is None else out[:top_k]


def tracks_by_query_index(detections: list[FrameDetections], video_id: int, category_id: int = 1) -> list[ytvis.Track]:
    """Link query q of every frame into one track, with no tracker (a Mask2Former-style model's queries
    are fixed slots; a baseline for the tracker). Score = the query's mean score; all-empty queries dropped."""
    tracks = []
    for q in range(len(detections[0]) if detections else 0):
        segs = [mask_utils.encode(d.masks[q].cpu().numpy()) if d.masks[q].any() else None for d in detections]
        if any(s is not None for s in segs):
            score = float(np.mean([float(d.scores[q]) for d in detections]))
            tracks.append(ytvis.Track(video_id=video_id, category_id=category_id, segmentations=segs, score=score))
    return tracks
