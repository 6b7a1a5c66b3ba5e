"""YouTube-VIS annotation and result files as typed objects.

The ground-truth layout is the official one: ``videos`` (with ``file_names``), ``annotations``
(one per object track, with one ``segmentations`` entry per frame: RLE, polygons or null) and
``categories``. Results are a list of ``{video_id, category_id, score, segmentations}``.
Loading validates everything a later stage relies on and turns mistakes into one-line
``UserError`` messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvis.data import atomic
from uvis.data import masks as mask_utils
from uvis.data.masks import RLE
from uvis.data.validate import MAX_SIDE, input_path, parse_json_text
from uvis.errors import UserError

#: Frame rate of YouTube-VIS frame folders: the annotated frames are every 5th frame of 30 fps video.
YTVIS_FPS = 6.0

@dataclass
class Category:
    id: int
    name: str
    supercategory: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "supercategory": self.supercategory}


@dataclass
class Video:
    id: int
    width: int
    height: int
    file_names: list[str]
    name: str = ""

    @property
    def length(self) -> int:
        return len(self.file_names)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "length": self.length,
            "file_names": self.file_names,
        }
        if self.name:
            out["name"] = self.name
        return out


@dataclass
class Track:
    """One object through a video: a mask (or None where absent) per frame.

    Used both for ground-truth annotations (``id``, ``iscrowd``) and for predictions (``score``).
    """

    video_id: int
    category_id: int
    segmentations: list[RLE | None]
    id: int = 0
    score: float = 1.0
    iscrowd: int = 0
    areas: list[float | None] | None = None

    def to_annotation_json(self) -> dict[str, Any]:
        areas = self.areas if self.areas is not None else [
            None if s is None else float(mask_utils.area(s)) for s in self.segmentations
        ]
        bboxes = [None if s is None else mask_utils.bbox(s) for s in self.segmentations]
        return {
            "id": self.id,
            "video_id": self.video_id,
            "category_id": self.category_id,
            "iscrowd": self.iscrowd,
            "segmentations": self.segmentations,
            "areas": areas,
            "bboxes": bboxes,
        }

    def to_result_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "category_id": self.category_id,
            "score": float(self.score),
            "segmentations": self.segmentations,
        }


@dataclass
class Dataset:
    videos: list[Video]
    tracks: list[Track]
    categories: list[Category]
    info: dict[str, Any] = field(default_factory=dict)
    frame_root: Path | None = None

    def __post_init__(self) -> None:
        self._videos_by_id = {v.id: v for v in self.videos}

    def video(self, video_id: int) -> Video:
        return self._videos_by_id[video_id]

    def has_video(self, video_id: int) -> bool:
        return video_id in self._videos_by_id

    def tracks_of(self, video_id: int) -> list[Track]:
        return [t for t in self.tracks if t.video_id == video_id]

    def frame_paths(self, video: Video) -> list[Path]:
        if self.frame_root is None:
            raise UserError(f"video {video.name or video.id} has no frame folder", fix="pass the frame root")
        return [self.frame_root / name for name in video.file_names]

    def category_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.categories}

    def to_json(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "videos": [v.to_json() for v in self.videos],
            "categories": [c.to_json() for c in self.categories],
            "annotations": [t.to_annotation_json() for t in self.tracks],
        }

    def save(self, path: str | Path) -> None:
        atomic.write_json(path, self.to_json())


def _read_json(path: str | Path, fix: str = "pass a YouTube-VIS JSON file") -> Any:
    """Parsed JSON, or a one-line error; ``fix`` is the advice for a file that does not parse."""
    path = input_path(path, folder_ok=False)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"not valid JSON ({e})", path=path, fix=fix) from None
    except OSError as e:
        raise UserError(f"cannot read file ({e.strerror or e})", path=path, fix="check the file's permissions") from None
    return parse_json_text(text, path=path, fix=fix)


def _require(obj: Any, key: str, what: str, path: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise UserError(
            f"{what} has no '{key}' key", path=path, fix="write the file in the YouTube-VIS format"
        )
    return obj[key]


def _number(obj: Any, key: str, what: str, path: Path, kind: type = int) -> Any:
    """A required numeric field, with a one-line error instead of a traceback when it is not a number.

    JSON numbers only: a string such as "6" is a mistake in the file, not something to guess about.
    Integer fields accept integral floats (6.0, as some writers emit); floats must be finite.
    """
    value = _require(obj, key, what, path)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and kind is int and isinstance(value, float) and not value.is_integer():
        raise UserError(f"{what}: '{key}' is {value!r}, not a whole number", path=path,
                        fix="write the file in the YouTube-VIS format")
    if not ok:
        raise UserError(f"{what}: '{key}' is {value!r}, not a number", path=path,
                        fix="write the file in the YouTube-VIS format")
    return kind(value)


def _text(obj: Any, key: str, what: str, path: Path, *, required: bool = True) -> str:
    """A string field (optional ones may be missing or null and read as "")."""
    value = _require(obj, key, what, path) if required else obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise UserError(f"{what}: '{key}' is {value!r}, not a string", path=path,
                        fix="write the file in the YouTube-VIS format")
    return value


def _object(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """An optional JSON object such as ``info`` (missing or null reads as {})."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"'{key}' is {type(value).__name__}, not an object", path=path,
                        fix="write the file in the YouTube-VIS format")
    return dict(value)


def _video(v: Any, what: str, path: Path) -> Video:
    """One validated ``videos`` entry."""
    names = _list(v, "file_names", what, path)
    for j, n in enumerate(names):
        if not isinstance(n, str):
            raise UserError(f"{what}: file_names[{j}] is {n!r}, not a string", path=path,
                            fix="list each frame's path relative to the frame root")
    width, height = _number(v, "width", what, path), _number(v, "height", what, path)
    if width <= 0 or height <= 0:
        raise UserError(f"{what}: size {width}x{height} is not positive", path=path,
                        fix="write the frames' width and height in pixels")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise UserError(f"{what}: size {width}x{height} is larger than any video ({MAX_SIDE} pixels a side)",
                        path=path, fix="write the frames' width and height in pixels")
    return Video(
        id=_number(v, "id", what, path),
        width=width,
        height=height,
        file_names=list(names),
        name=_text(v, "name", what, path, required=False) or (str(Path(names[0]).parent) if names else ""),
    )


def read_categories(items: list[Any], path: Path) -> list[Category]:
    """The ``categories`` entries of a file (``id``, ``name``, optional ``supercategory``), each checked."""
    return [
        Category(
            id=_number(c, "id", f"categories[{i}]", path),
            name=_text(c, "name", f"categories[{i}]", path),
            supercategory=_text(c, "supercategory", f"categories[{i}]", path, required=False),
        )
        for i, c in enumerate(items)
    ]


def check_unique_ids(videos: list[Video], categories: list[Category], path: Path) -> None:
    """Every video and every category of a file has its own id."""
    for items, kind in ((videos, "video"), (categories, "category")):
        seen: set[int] = set()
        for item in items:
            if item.id in seen:
                raise UserError(f"{kind} id {item.id} is listed twice", path=path, fix=f"give every {kind} its own id")
            seen.add(item.id)


def _list(obj: Any, key: str, what: str, path: Path) -> list[Any]:
    value = _require(obj, key, what, path)
    if not isinstance(value, list):
        raise UserError(f"{what}: '{key}' is not a list", path=path, fix="write the file in the YouTube-VIS format")
    return value


def _areas(areas: Any, length: int) -> list[float | None] | None:
    """Stored per-frame areas when they are well formed; otherwise None (they are recomputed from masks)."""
    if not isinstance(areas, list) or len(areas) != length:
        return None
    try:
        values = [None if x is None else float(x) for x in areas]
    except (TypeError, ValueError):
        return None
    return values if all(v is None or (math.isfinite(v) and v >= 0) for v in values) else None


def _check_segmentations(
    segs: Any, video: Video, what: str, path: Path, pending: _Pending | None = None
) -> list[RLE | None]:
    """Per-frame masks as compressed RLE; run lengths are checked now, or later in one batch when the
    caller passes ``pending``."""
    if not isinstance(segs, list):
        raise UserError(f"{what}: 'segmentations' is not a list", path=path, fix="one entry per frame")
    if len(segs) != video.length:
        raise UserError(
            f"{what}: {len(segs)} segmentations but video {video.id} has {video.length} frames",
            path=path,
            fix="give one segmentation (or null) per frame",
        )
    out: list[RLE | None] = []
    for t, seg in enumerate(segs):
        try:
            rle = mask_utils.normalize(seg, video.height, video.width, check_runs=pending is None)
        except Exception as e:  # pycocotools raises bare Exceptions on malformed input
            raise UserError(f"{what}, frame {t}: unreadable mask ({e})", path=path, fix="use COCO RLE or polygons") from None
        if rle is not None and tuple(rle["size"]) != (video.height, video.width):
            raise UserError(
                f"{what}, frame {t}: mask size {tuple(rle['size'])} but video {video.id} is "
                f"{(video.height, video.width)} (h, w)",
                path=path,
                fix="encode masks at the video's resolution",
            )
        if rle is not None and pending is not None:
            pending.add(rle, what, t)
        out.append(rle)
    return out


class _Pending:
    """Masks whose run lengths are still to be checked, in one batch (see ``masks.check_many``).

    Plain parallel lists, not a tuple per mask: loading holds millions of objects, and every extra
    container object would make the garbage collector walk them all more often.
    """

    def __init__(self) -> None:
        self.rles: list[RLE] = []
        self.whats: list[str] = []
        self.frames: list[int] = []

    def add(self, rle: RLE, what: str, t: int) -> None:
        self.rles.append(rle)
        self.whats.append(what)
        self.frames.append(t)

    def check(self, path: Path) -> None:
        bad = mask_utils.check_many(self.rles)
        if bad is None:
            return
        try:
            mask_utils.check(self.rles[bad])
            reason = "malformed RLE"
        except Exception as e:
            reason = str(e)
        raise UserError(f"{self.whats[bad]}, frame {self.frames[bad]}: unreadable mask ({reason})", path=path,
                        fix="use COCO RLE or polygons")


def load_dataset(json_path: str | Path, frame_root: str | Path | None = None) -> Dataset:
    """Load and validate a YouTube-VIS annotation file (``annotations`` may be absent for test sets)."""
    path = Path(json_path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UserError("top level is not an object", path=path, fix="write the file in the YouTube-VIS format")
    videos = [_video(v, f"videos[{i}]", path) for i, v in enumerate(_list(data, "videos", "the file", path))]
    categories = read_categories(_list(data, "categories", "the file", path), path)
    check_unique_ids(videos, categories, path)
    by_id = {v.id: v for v in videos}
    cat_ids = {c.id for c in categories}
    tracks: list[Track] = []
    pending = _Pending()
    annotations = data.get("annotations", []) or []
    if not isinstance(annotations, list):
        raise UserError("'annotations' is not a list", path=path, fix="write the file in the YouTube-VIS format")
    for i, a in enumerate(annotations):
        what = f"annotations[{i}]"
        vid = _number(a, "video_id", what, path)
        if vid not in by_id:
            raise UserError(f"{what}: unknown video_id {vid}", path=path, fix="every annotation must name a listed video")
        cid = _number(a, "category_id", what, path)
        if cid not in cat_ids:
            raise UserError(f"{what}: unknown category_id {cid}", path=path, fix="list the category in 'categories'")
        segs = _check_segmentations(_require(a, "segmentations", what, path), by_id[vid], what, path, pending)
        areas = a.get("areas")
        tracks.append(
            Track(
                video_id=vid,
                category_id=cid,
                segmentations=segs,
                id=_number(a, "id", what, path) if a.get("id") is not None else i + 1,
                iscrowd=_number(a, "iscrowd", what, path) if a.get("iscrowd") is not None else 0,
                areas=_areas(areas, len(segs)),
            )
        )
    pending.check(path)
    return Dataset(
        videos=videos,
        tracks=tracks,
        categories=categories,
        info=_object(data, "info", path),
        frame_root=Path(frame_root) if frame_root is not None else None,
    )


def load_results(json_path: str | Path, dataset: Dataset, *, check_categories: bool = True) -> list[Track]:
    """Load and validate a YouTube-VIS results file against the ground truth it will be scored on."""
    path = Path(json_path)
    data = _read_json(path)
    if isinstance(data, dict) and "annotations" in data:  # tolerate results wrapped like a GT file
        data = data["annotations"]
    if not isinstance(data, list):
        raise UserError("results must be a JSON list", path=path, fix="write [{video_id, category_id, score, segmentations}, ...]")
    cat_ids = {c.id for c in dataset.categories}
    out: list[Track] = []
    pending = _Pending()
    for i, r in enumerate(data):
        what = f"result [{i}]"
        vid = _number(r, "video_id", what, path)
        if not dataset.has_video(vid):
            raise UserError(f"{what}: unknown video_id {vid}", path=path, fix="predict only videos of the ground truth")
        cid = _number(r, "category_id", what, path)
        if check_categories and cid not in cat_ids:
            raise UserError(f"{what}: unknown category_id {cid}", path=path, fix="use the ground truth's category ids")
        score = _number(r, "score", what, path, float)
        segs = _check_segmentations(_require(r, "segmentations", what, path), dataset.video(vid), what, path, pending)
        out.append(Track(video_id=vid, category_id=cid, segmentations=segs, score=score, id=i + 1))
    pending.check(path)
    return out


def save_results(path: str | Path, tracks: list[Track]) -> None:
    atomic.write_json(path, [t.to_result_json() for t in tracks])
