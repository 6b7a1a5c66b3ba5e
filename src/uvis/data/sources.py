"""Turning whatever the user points at into a list of videos.

Accepted inputs (checked in this order):

- a YouTube-VIS annotation JSON (frames under ``--frames``, or a ``JPEGImages`` folder beside it);
- a DAVIS folder (``JPEGImages/480p`` + ``Annotations/480p``);
- a folder holding ``annotations.json`` and ``JPEGImages/`` (what ``uvis.data.synthetic`` writes);
- one video file, or one folder of JPEG/PNG frames;
- a folder of video files and/or frame folders (one video each, sorted by name).

Ground truth, when the input has it, comes along as a ``Dataset`` so results can be evaluated.

Frame rates: a video file keeps its own. Frames carry none, so a frame folder plays at ``fps`` when given, else
at its dataset's known rate (DAVIS 24, ``uvis.data.davis.DAVIS_FPS``; YouTube-VIS, whose frames are every 5th of 30 fps video,
6, ``uvis.data.ytvis.YTVIS_FPS``; a dataset JSON may state its own as ``info.fps``), else at 30.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from uvis.data import ytvis
from uvis.data.validate import FLAG_RANGES, finite_number, input_path
from uvis.data.video import (
    DEFAULT_FOLDER_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Video,
    image_size,
    list_frames,
    open_video,
)
from uvis.errors import UserError


@dataclass
class VideoItem:
    """One video of a collection, opened lazily."""

    video_id: int
    name: str
    path: Path  # a video file, a frame folder, or a dataset's frame root
    file_names: list[str] | None = None  # frames relative to ``path`` (dataset videos)
    fps: float | None = None  # playback rate of a frame folder (None: a video file's own, or 30)
    accept_truncated: bool = False  # a video file cut short gives the frames that decode (else an error)

    def open(self) -> Video:
        return open_video(self.path, fps=self.fps if self.path.is_dir() else None, frame_names=self.file_names,
                          title=self.name, accept_truncated=self.accept_truncated)

    def known_length(self) -> int | None:
        """Frame count when it is cheap to know (dataset lists, frame folders); None for video files."""
        if self.file_names is not None:
            return len(self.file_names)
        return len(list_frames(self.path)) if self.path.is_dir() else None

    def frame_count(self) -> int:
        """Frame count (a video file's from its container; 1 for a video that cannot be opened, whose error
        comes when it is processed): the weight that balances videos between processes."""
        known = self.known_length()
        if known is not None:
            return known
        try:
            return len(self.open())
        except UserError:
            return 1


@dataclass
class Collection:
    root: Path
    items: list[VideoItem]
    dataset: ytvis.Dataset | None = None  # ground truth / vocabulary, when the input carries one

    def __len__(self) -> int:
        return len(self.items)

    def count_frames(self) -> int | None:
        """Frames of every video (frame lists counted, video files probed); None if a video cannot be read."""
        total = 0
        for item in self.items:
            if item.file_names is not None:
                total += len(item.file_names)
                continue
            try:
                total += item.open().num_frames
            except UserError:
                return None
        return total

    def shard(self, index: int, count: int) -> list[VideoItem]:
        """The videos of shard ``index`` of ``count`` (round-robin, so shards stay balanced)."""
        if count < 1 or not 0 <= index < count:
            raise UserError(f"bad shard {index}/{count}", fix="use shard=i/n with 0 <= i < n", param="shard")
        return self.items[index::count]


def unreadable_list(names: Iterable[str], shown: int = 5) -> str:
    """'N unreadable video(s): a, b, c ...' for the messages of --skip-bad-videos."""
    names = sorted(names)
    more = " ..." if len(names) > shown else ""
    return f"{len(names)} unreadable video(s): {', '.join(names[:shown])}{more}"


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"bad shard={text!r}", fix="write it as i/n, e.g. shard=0/4", param="shard") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"bad shard={text!r}", fix="use 0 <= i < n", param="shard")
    return i, n


def check_fps(fps: float | None) -> float | None:
    """``fps`` as given by the user (None stays None); a UserError unless it is in ``FLAG_RANGES["fps"]``."""
    if fps is None:
        return None
    return finite_number(fps, f"fps={fps}", allowed=FLAG_RANGES["fps"],
                         fix="give the frame rate of the frame folders in frames per second, e.g. fps=6")


def _dataset_fps(dataset: ytvis.Dataset, default: float) -> float:
    stated = dataset.info.get("fps")
    return float(stated) if isinstance(stated, int | float) and stated > 0 else default


def _dataset_collection(dataset: ytvis.Dataset, root: Path, fps: float) -> Collection:
    """The videos of a dataset, each checked now (not hours into a job): it lists frames, and its first frame
    exists and has the width and height the file gives (results at another size would fail evaluation)."""
    assert dataset.frame_root is not None
    items = [VideoItem(v.id, v.name or str(v.id), dataset.frame_root, v.file_names, fps=fps) for v in dataset.videos]
    for video, item in zip(dataset.videos, items, strict=True):
        if not video.file_names:
            raise UserError(f"video {item.name} (id {video.id}) lists no frames", path=root,
                            fix="give every video its file_names, or remove it from the file")
        first = dataset.frame_root / video.file_names[0]
        if not first.exists():
            raise UserError(f"frame {video.file_names[0]} of video {item.name} not found under {dataset.frame_root}",
                            path=root, fix="pass the folder that holds the frames as frames=FOLDER")
        if first.is_file():
            h, w = image_size(first)
            if (h, w) != (video.height, video.width):
                raise UserError(f"video {item.name} is {video.width}x{video.height} in the file, but its frame "
                                f"{video.file_names[0]} is {w}x{h}", path=root,
                                fix="correct the video's width and height in the file")
    return Collection(root=root, items=items, dataset=dataset)


def _guess_frame_root(json_path: Path) -> Path:
    for candidate in (json_path.parent / "JPEGImages", json_path.parent / json_path.stem / "JPEGImages"):
        if candidate.is_dir():
            return candidate
    return json_path.parent


def discover(path: str | Path, *, frames: str | Path | None = None, fps: float | None = None,
             accept_truncated: bool = False) -> Collection:
    """Find the videos under ``path`` (see the module docstring for what is accepted).

    ``frames`` is the frame root of a YouTube-VIS JSON; for any other input it is a UserError. ``fps`` is the
    frame rate of frame folders (default: the dataset's own, else 30); video files keep theirs.
    ``accept_truncated``: video files cut short give the frames that decode instead of an error.
    """
    collection = _discover(path, frames, check_fps(fps))
    for item in collection.items:
        item.accept_truncated = accept_truncated
    return collection


def _discover(path: str | Path, frames: str | Path | None, fps: float | None) -> Collection:
    path = input_path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        root = Path(frames) if frames is not None else _guess_frame_root(path)
        dataset = ytvis.load_dataset(path, root)
        return _dataset_collection(dataset, path, fps or _dataset_fps(dataset, ytvis.YTVIS_FPS))
    if frames is not None:  # other inputs locate their own frames: a frame root given for them would be ignored
        raise UserError(f"frames={frames} only applies to a YouTube-VIS JSON given as the data", path=path,
                        fix="drop frames (this input's frames are found from the path itself)", param="frames")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise UserError(f"unknown input type '{path.suffix}'", path=path,
                            fix=f"pass a video ({', '.join(sorted(VIDEO_EXTENSIONS))}), a folder, or a YouTube-VIS JSON")
        return Collection(root=path, items=[VideoItem(1, path.stem, path)])
    if (path / "JPEGImages" / "480p").is_dir() and (path / "Annotations" / "480p").is_dir():
        from uvis.data.davis import DAVIS_FPS, load_davis

        return _dataset_collection(load_davis(path), path, fps or DAVIS_FPS)
    if (path / "annotations.json").is_file() and (path / "JPEGImages").is_dir():
        dataset = ytvis.load_dataset(path / "annotations.json", path / "JPEGImages")
        return _dataset_collection(dataset, path, fps or _dataset_fps(dataset, ytvis.YTVIS_FPS))
    folder_fps = fps or DEFAULT_FOLDER_FPS
    if list_frames(path):
        return Collection(root=path, items=[VideoItem(1, path.name, path, fps=folder_fps)])
    items: list[VideoItem] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        is_video = child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS
        is_frames = child.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in child.iterdir())
        if is_video or is_frames:
            items.append(VideoItem(len(items) + 1, child.stem if is_video else child.name, child,
                                   fps=None if is_video else folder_fps))
    if not items:
        raise UserError("no videos or frame folders found", path=path,
                        fix="pass a video file, a folder of frames, a folder of videos, or a YouTube-VIS JSON")
    return Collection(root=path, items=items)


def to_ytvis_video(item: VideoItem, video: Video) -> ytvis.Video:
    """The YouTube-VIS entry for an opened video (frame names as the pseudo-label file records them)."""
    names = item.file_names if item.file_names is not None else [f"{item.name}/{n}" for n in video.frame_names]
    return ytvis.Video(id=item.video_id, width=video.width, height=video.height, file_names=names, name=item.name)
