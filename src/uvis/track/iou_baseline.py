"""The IoU-linking baseline: per-frame masks joined into tracks by their overlap with the previous frame.

This is the reference point of the end-to-end report: no appearance model, no memory. Each frame's
class-agnostic masks are matched to the masks the live tracks had in the previous frame by Hungarian
assignment on 1 - IoU; a pair counts as a link only at IoU >= ``iou_threshold``. An unmatched mask
starts a new track; a track with no match in a frame ends there (it is never resumed, so an object that
is missed for one frame comes back as a new track — the weakness the memory-bank tracker addresses).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from uvis.data import masks
from uvis.data.masks import RLE
from uvis.data.ytvis import Dataset, Track
from uvis.data.ytvis import Video as YtvisVideo
from uvis.pseudo.format import FrameInstance, PseudoLabels


@dataclass
class IoULinkConfig:
    """iou_threshold: least previous-frame mask IoU that links a mask to a track (default 0.3).
    min_score: masks scored below this are dropped before linking (default 0: keep all).
    default_category: category of a track whose masks carry none (default 1, e.g. DAVIS "object")."""

    iou_threshold: float = 0.3
    min_score: float = 0.0
    default_category: int = 1


@dataclass
class _Open:
    """A track being built: its masks so far and the instances behind them."""

    start: int
    masks: list[RLE] = field(default_factory=list)
    instances: list[FrameInstance] = field(default_factory=list)

    @property
    def last(self) -> RLE:
        return self.masks[-1]


def _category(instances: list[FrameInstance], default: int) -> int:
    """Majority vote of the instances' categories (ties: the smaller id); ``default`` when none has one."""
    votes = Counter(i.category_id for i in instances if i.category_id is not None)
    if not votes:
        return default
    return min(votes, key=lambda c: (-votes[c], c))


def link_video(frames: list[list[FrameInstance]], video_id: int, config: IoULinkConfig | None = None) -> list[Track]:
    """Link the instances of one video (``frames[t]`` = instances of frame t) into tracks."""
    config = config or IoULinkConfig()
    n_frames = len(frames)
    live: list[_Open] = []
    created: list[_Open] = []  # every track in order of birth: by start frame, then instance order
    for t, found in enumerate(frames):
        found = [i for i in found if i.score >= config.min_score]
        iou = masks.iou([tr.last for tr in live], [i.segmentation for i in found])
        links: dict[int, int] = {}  # instance index -> live track index
        if iou.size:
            rows, cols = linear_sum_assignment(1.0 - iou)
            links = {int(c): int(r) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= config.iou_threshold}
        next_live = []
        for j, inst in enumerate(found):
            if j in links:
                tr = live[links[j]]
            else:
                tr = _Open(start=t)
                created.append(tr)
            tr.masks.append(inst.segmentation)
            tr.instances.append(inst)
            next_live.append(tr)
        live = next_live
    tracks = []
    for tr in created:
        segs: list[RLE | None] = [None] * n_frames
        segs[tr.start : tr.start + len(tr.masks)] = tr.masks
        tracks.append(Track(
            video_id=video_id,
            category_id=_category(tr.instances, config.default_category),
            segmentations=segs,
            score=float(np.mean([i.score for i in tr.instances])),
        ))
    return tracks


def link_by_iou(labels: PseudoLabels, config: IoULinkConfig | None = None) -> list[Track]:
    """Tracks for every video of a pseudo-label file, as YouTube-VIS results (ids numbered from 1)."""
    groups = labels.by_frame()
    tracks: list[Track] = []
    for video in labels.videos:
        frames = [groups.get((video.id, t), []) for t in range(video.length)]
        tracks.extend(link_video(frames, video.id, config))
    for k, tr in enumerate(tracks, start=1):
        tr.id = k
    return tracks


def instances_from_tracks(dataset: Dataset, *, score: float = 1.0) -> PseudoLabels:
    """Cut ground-truth tracks into per-frame instances (non-empty masks only), e.g. as an oracle input."""
    instances = []
    by_video: dict[int, list[Track]] = defaultdict(list)
    for tr in dataset.tracks:
        by_video[tr.video_id].append(tr)
    for video in dataset.videos:
        for t in range(video.length):
            for tr in by_video[video.id]:
                seg = tr.segmentations[t]
                if seg is not None and masks.area(seg) > 0:
                    instances.append(FrameInstance(video_id=video.id, frame_index=t, segmentation=seg,
                                                   score=score, category_id=tr.category_id))
    videos = [YtvisVideo(id=v.id, width=v.width, height=v.height, file_names=list(v.file_names), name=v.name)
              for v in dataset.videos]
    return PseudoLabels(videos=videos, instances=instances, categories=list(dataset.categories))
