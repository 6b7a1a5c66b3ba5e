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
from uvis.data.video import DEFAULT_FOLDER_FPS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Video, list_frames, open_video
from uvis.errors import UserError


@dataclass
class VideoItem:
    """One video of a collection, opened lazily."""

    video_id: int
    name: str
    path: Path  # a video file, a frame folder, or a dataset's frame root
    file_names: list[str] | None = None  # frames relative to ``path`` (dataset videos)
    fps: float | None = None  # playback rate of a frame folder (None: a video file's own, or 30)

    def open(self) -> Video:
        return open_video(self.path, fps=self.fps if self.path.is_dir() else None, frame_names=self.file_names,
                          title=self.name)


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
            raise UserError(f"bad shard {index}/{count}", fix="use --shard i/n with 0 <= i < n")
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
        raise UserError(f"bad --shard '{text}'", fix="write it as i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"bad --shard '{text}'", fix="use 0 <= i < n")
    return i, n


def check_fps(fps: float | None) -> float | None:
    """``fps`` as given by the user (None stays None); a UserError unless it is a positive number."""
    if fps is None:
        return None
    if not fps > 0 or fps > 1000:
        raise UserError(f"--fps {fps}", fix="give the frame rate of the frame folders in frames per second, e.g. --fps 6")
    return float(fps)


def _dataset_fps(dataset: ytvis.Dataset, default: float) -> float:
    stated = dataset.info.get("fps")
    return float(stated) if isinstance(stated, int | float) and stated > 0 else default


def _dataset_collection(dataset: ytvis.Dataset, root: Path, fps: float) -> Collection:
    assert dataset.frame_root is not None
    items = [VideoItem(v.id, v.name or str(v.id), dataset.frame_root, v.file_names, fps=fps) for v in dataset.videos]
    first = items[0] if items else None
    if first is not None and first.file_names and not (dataset.frame_root / first.file_names[0]).exists():
        raise UserError(
            f"frame {first.file_names[0]} of video {first.name} not found under {dataset.frame_root}",
            path=root,
            fix="pass the folder that holds the frames with --frames",
        )
    return Collection(root=root, items=items, dataset=dataset)


def _guess_frame_root(json_path: Path) -> Path:
    for candidate in (json_path.parent / "JPEGImages", json_path.parent / json_path.stem / "JPEGImages"):
        if candidate.is_dir():
            return candidate
    return json_path.parent


def discover(path: str | Path, *, frames: str | Path | None = None, fps: float | None = None) -> Collection:
    """Find the videos under ``path`` (see the module docstring for what is accepted).

    ``frames`` is the frame root of a YouTube-VIS JSON; for any other input it is a UserError. ``fps`` is the
    frame rate of frame folders (default: the dataset's own, else 30); video files keep theirs.
    """
    fps = check_fps(fps)
    path = Path(path)
    if not path.exists():
        raise UserError("no such file or folder", path=path, fix="check the path")
    if path.is_file() and path.suffix.lower() == ".json":
        root = Path(frames) if frames is not None else _guess_frame_root(path)
        dataset = ytvis.load_dataset(path, root)
        return _dataset_collection(dataset, path, fps or _dataset_fps(dataset, ytvis.YTVIS_FPS))
    if frames is not None:  # other inputs locate their own frames: a frame root given for them would be ignored
        raise UserError(f"--frames {frames} only applies to a YouTube-VIS JSON given as the data", path=path,
                        fix="drop --frames (this input's frames are found from the path itself)")
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
