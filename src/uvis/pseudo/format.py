"""The pseudo-label file: frame-level instances, written by stage 1 and read by stages 1b, 2 and 3.

Layout (COCO-like, one entry per mask in one frame)::

    {
      "info": {...how it was made...},
      "videos": [YouTube-VIS video entries],
      "categories": [{"id", "name"}...]        # empty until masks are named (stage 1b)
      "annotations": [
        {"id", "video_id", "frame_index", "segmentation": RLE, "bbox": [x,y,w,h], "area",
         "score", "category_id": int | null, "class_prob": float | null}
      ],
      "stats": {...}                            # optional per-stage statistics
    }

Per-video parts are written atomically by the collection runner and merged into this file at the end.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvis.data import atomic
from uvis.data import masks as mask_utils
from uvis.data.masks import RLE
from uvis.data.ytvis import (
    Category,
    Video,
    _list,
    _number,
    _object,
    _read_json,
    _require,
    _video,
    check_unique_ids,
    read_categories,
)
from uvis.errors import UserError


@dataclass
class FrameInstance:
    """One pseudo-mask in one frame."""

    video_id: int
    frame_index: int
    segmentation: RLE
    score: float
    category_id: int | None = None
    class_prob: float | None = None
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "video_id": self.video_id,
            "frame_index": self.frame_index,
            "segmentation": self.segmentation,
            "bbox": mask_utils.bbox(self.segmentation),
            "area": mask_utils.area(self.segmentation),
            "score": float(self.score),
            "category_id": self.category_id,
            "class_prob": None if self.class_prob is None else float(self.class_prob),
        }

    @staticmethod
    def from_json(a: dict[str, Any], what: str, path: Path) -> FrameInstance:
        """One validated annotation entry; wrong types are one-line ``UserError``s."""
        seg = _require(a, "segmentation", what, path)
        size = seg.get("size") if isinstance(seg, dict) else None
        if (
            not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
            or not isinstance(seg.get("counts"), str)
        ):
            # Shape here; the run lengths of all masks are checked at once by load_pseudo_labels.
            raise UserError(f"{what}: 'segmentation' is not a compressed RLE {{size: [h, w], counts: str}}",
                            path=path, fix="regenerate the pseudo-labels")
        optional = {k: None if a.get(k) is None else _number(a, k, what, path, kind)
                    for k, kind in (("category_id", int), ("class_prob", float), ("id", int))}
        return FrameInstance(
            video_id=_number(a, "video_id", what, path),
            frame_index=_number(a, "frame_index", what, path),
            segmentation=seg,
            score=_number(a, "score", what, path, float),
            category_id=optional["category_id"],
            class_prob=optional["class_prob"],
            id=optional["id"] or 0,
        )


@dataclass
class PseudoLabels:
    videos: list[Video]
    instances: list[FrameInstance]
    categories: list[Category] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def by_frame(self) -> dict[tuple[int, int], list[FrameInstance]]:
        """Instances grouped by (video_id, frame_index)."""
        groups: dict[tuple[int, int], list[FrameInstance]] = defaultdict(list)
        for inst in self.instances:
            groups[(inst.video_id, inst.frame_index)].append(inst)
        return dict(groups)

    def to_json(self) -> dict[str, Any]:
        for i, inst in enumerate(self.instances, start=1):
            inst.id = i
        return {
            "info": self.info,
            "videos": [v.to_json() for v in self.videos],
            "categories": [c.to_json() for c in self.categories],
            "annotations": [inst.to_json() for inst in self.instances],
            "stats": self.stats,
        }

    def save(self, path: str | Path) -> None:
        atomic.write_json(path, self.to_json())


def load_pseudo_labels(path: str | Path) -> PseudoLabels:
    """Load and validate a pseudo-label file."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UserError("top level is not an object", path=path, fix="pass a uvis pseudo-label file")
    videos = [_video(v, f"videos[{i}]", path) for i, v in enumerate(_list(data, "videos", "the file", path))]
    if not isinstance(data.get("categories") or [], list):
        raise UserError("'categories' is not a list", path=path, fix="pass a uvis pseudo-label file")
    categories = read_categories(data.get("categories") or [], path)
    check_unique_ids(videos, categories, path)  # as load_dataset
    by_id = {v.id: v for v in videos}
    instances = []
    for i, a in enumerate(_list(data, "annotations", "the file", path)):
        inst = FrameInstance.from_json(a, f"annotations[{i}]", path)
        video = by_id.get(inst.video_id)
        if video is None:
            raise UserError(f"annotations[{i}]: unknown video_id {inst.video_id}", path=path, fix="list the video in 'videos'")
        if not 0 <= inst.frame_index < video.length:
            raise UserError(
                f"annotations[{i}]: frame_index {inst.frame_index} outside video {video.id} ({video.length} frames)",
                path=path,
                fix="regenerate the pseudo-labels",
            )
        if tuple(inst.segmentation.get("size", ())) != (video.height, video.width):
            raise UserError(
                f"annotations[{i}]: mask size {inst.segmentation.get('size')} but video is {[video.height, video.width]}",
                path=path,
                fix="encode masks at the video's resolution",
            )
        instances.append(inst)
    bad = mask_utils.check_many([inst.segmentation for inst in instances])
    if bad is not None:  # pycocotools would read such a mask out of bounds or loop forever on it
        try:
            mask_utils.check(instances[bad].segmentation)
            reason = "malformed RLE"
        except Exception as e:
            reason = str(e)
        raise UserError(f"annotations[{bad}]: unreadable mask ({reason})", path=path, fix="regenerate the pseudo-labels")
    return PseudoLabels(
        videos=videos,
        instances=instances,
        categories=categories,
        info=_object(data, "info", path),
        stats=_object(data, "stats", path),
    )
