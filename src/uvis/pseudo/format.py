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
from uvis.data.ytvis import Category, Video, _read_json, _require
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
        cid = a.get("category_id")
        prob = a.get("class_prob")
        return FrameInstance(
            video_id=int(_require(a, "video_id", what, path)),
            frame_index=int(_require(a, "frame_index", what, path)),
            segmentation=_require(a, "segmentation", what, path),
            score=float(_require(a, "score", what, path)),
            category_id=None if cid is None else int(cid),
            class_prob=None if prob is None else float(prob),
            id=int(a.get("id", 0)),
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
    videos = [
        Video(
            id=int(_require(v, "id", f"videos[{i}]", path)),
            width=int(_require(v, "width", f"videos[{i}]", path)),
            height=int(_require(v, "height", f"videos[{i}]", path)),
            file_names=[str(n) for n in _require(v, "file_names", f"videos[{i}]", path)],
            name=str(v.get("name", "")),
        )
        for i, v in enumerate(_require(data, "videos", "the file", path))
    ]
    categories = [
        Category(id=int(c["id"]), name=str(c["name"]), supercategory=str(c.get("supercategory", "")))
        for c in data.get("categories", []) or []
    ]
    by_id = {v.id: v for v in videos}
    instances = []
    for i, a in enumerate(_require(data, "annotations", "the file", path)):
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
    return PseudoLabels(
        videos=videos,
        instances=instances,
        categories=categories,
        info=dict(data.get("info", {}) or {}),
        stats=dict(data.get("stats", {}) or {}),
    )
