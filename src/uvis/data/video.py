"""Reading and writing video: files (mp4/avi/mov/webm/...) through PyAV and folders of frames.

A ``Video`` is lazy: frames are decoded one at a time while iterating, so long videos stream
in constant memory. Every frame comes out as an HxWx3 RGB uint8 array, whatever the source
(greyscale and RGBA inputs are converted), upright (a video file's stored rotation is applied).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from uvis.data.validate import frame_size, input_path
from uvis.errors import UserError

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_FOLDER_FPS = 30.0


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 or HxWx4 uint8 array → HxWx3 RGB uint8."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"cannot read an image of shape {image.shape} as RGB")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image, dtype=np.uint8)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    """RGB uint8 from any PIL mode; 16-bit and float greyscale are scaled, not clipped to white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im).astype(np.float32)
        scale = 257.0 if im.mode.startswith("I;16") or grey.max(initial=0) > 255 else 1.0
        return to_rgb(np.clip(np.rint(grey / scale), 0, 255).astype(np.uint8))
    if im.mode == "F":
        return to_rgb(np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8))
    return np.asarray(im.convert("RGB"))


def read_image(path: str | Path) -> np.ndarray:
    """Decode one image file to HxWx3 RGB uint8 (greyscale, palette, RGBA and 16-bit inputs converted)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return _pil_to_rgb(im)
    except FileNotFoundError:
        raise UserError("image not found", path=path, fix="check the path") from None
    except Exception as e:
        raise UserError(f"cannot decode image ({type(e).__name__})", path=path, fix="re-export it as JPEG or PNG") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except FileNotFoundError:
        raise UserError("image not found", path=path, fix="check the path") from None
    except Exception as e:
        raise UserError(f"cannot read image ({type(e).__name__})", path=path, fix="re-export it as JPEG or PNG") from None


def _ffmpeg_message(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e)


def resize(frame: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize an HxW(xC) array to (height, width)."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(frame).resize((w, h), resample))


def resize_short_side(frame: np.ndarray, short: int, *, max_long: int | None = None) -> np.ndarray:
    """Scale so the short side is ``short`` (and the long side at most ``max_long``), keeping aspect."""
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    if max_long is not None:
        scale = min(scale, max_long / max(h, w))
    return resize(frame, (max(1, round(h * scale)), max(1, round(w * scale))))


@dataclass
class Video:
    """A lazily decoded video: a file or a folder of frames."""

    path: Path
    fps: float
    height: int
    width: int
    num_frames: int
    frame_names: list[str]
    title: str = ""
    declared_frames: int = 0  # the frame count a video file's index declares (0: none); fewer decoded is an error
    accept_truncated: bool = False  # ... unless this is set: then the frames that decode are used

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.path.is_dir():
            for name in self.frame_names:
                frame = read_image(self.path / name)
                if frame.shape[:2] != (self.height, self.width):
                    raise UserError(
                        f"frame {name} is {frame.shape[1]}x{frame.shape[0]} but the first frame is "
                        f"{self.width}x{self.height}",
                        path=self.path,
                        fix="give all frames of a video the same size",
                    )
                yield frame
        else:
            yield from _decode_file(self.path, self.size, self.declared_frames, self.accept_truncated)

    def batches(self, size: int, *, prefetch: bool = False) -> Iterator[np.ndarray]:
        """Frames in [B, H, W, 3] stacks of ``size`` (the last may be shorter), decoded as they are needed.

        ``prefetch``: decode the next stack on a thread while the caller works on this one (the decoder
        releases the GIL, so decoding overlaps a model's forward pass).
        """
        if prefetch:
            yield from prefetched(self.batches(size))
            return
        yield from stacked(iter(self), size)

    def read_all(self) -> np.ndarray:
        """All frames as a TxHxWx3 array (only for short videos)."""
        return np.stack(list(self))


def stacked(frames: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """``frames`` in [B, H, W, 3] stacks of ``size`` (the last may be shorter)."""
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def checked_frames(frames: Iterable[np.ndarray], what: str = "the frame source") -> Iterator[np.ndarray]:
    """The frames of any iterable (a camera, a generator, a [T, H, W, 3] array), each checked to be an HxWx3 uint8
    RGB array of the first one's size. A bad frame, or the iterable failing, is a ``UserError`` naming the frame
    (the iterable's own exception is its cause); none at all is one too."""
    fix = "give HxWx3 uint8 RGB frames, all of one size"
    try:
        it = iter(frames)
    except TypeError:
        raise UserError(f"{what} is not a video, a frame folder or an iterable of frames ({type(frames).__name__})",
                        fix="pass a video file, a folder of frames or an iterable of HxWx3 uint8 arrays") from None
    size: tuple[int, ...] | None = None
    index = 0
    while True:
        try:
            frame = next(it)
        except StopIteration:
            break
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{what} failed after {index} frame(s) ({type(e).__name__}: {e})",
                            fix="check the camera or generator giving the frames") from e
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 \
                or 0 in frame.shape:
            desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise UserError(f"frame {index} of {what} is {desc}, not an HxWx3 uint8 RGB array", fix=fix)
        if size is None:
            size = frame.shape
        elif frame.shape != size:
            raise UserError(f"frame {index} of {what} is {frame.shape[1]}x{frame.shape[0]}, the first "
                            f"{size[1]}x{size[0]}", fix=fix)
        yield frame
        index += 1
    if index == 0:
        raise UserError(f"{what} gave no frames", fix="pass a video file, a frame folder or a non-empty iterable of "
                                                       "HxWx3 uint8 frames")


def with_next_frame(batches: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Each batch with the frame that follows it (None after the last batch), for models that look one frame
    ahead (motion); reads one batch ahead."""
    current = next(batches, None)
    while current is not None:
        following = next(batches, None)
        yield current, (following[0] if following is not None else None)
        current = following


def prefetched(items: Iterator[Any]) -> Iterator[Any]:
    """The items of ``items``, each produced on a worker thread while the previous one is being used."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(next, items, None)
        while (item := fut.result()) is not None:
            fut = pool.submit(next, items, None)
            yield item


def _quarter_turns(frame) -> int:  # noqa: ANN001 (PyAV type)
    """Counter-clockwise quarter turns that show a decoded frame upright: phones store portrait video sideways
    with a rotation in the container, which players apply and PyAV leaves to us (0 on PyAV without it)."""
    return round(getattr(frame, "rotation", 0) / 90) % 4


def main_video_stream(streams: Sequence[Any]) -> Any:
    """The video stream to read: the first that is not a cover picture (an mp4 or mkv with an embedded
    thumbnail lists it as a one-frame video stream, sometimes before the real one)."""
    import av

    cover = int(av.stream.Disposition.attached_pic)
    return next((s for s in streams if not int(s.disposition) & cover), streams[0])


DECODE_SLACK = 2  # frames an intact file may decode fewer than its index declares (edit lists trim a start frame)
TRUNCATED_FIX = "download or copy it again, or pass accept_truncated=True to use the frames that decode"


def _decode_file(path: Path, size: tuple[int, int] | None, expected: int = 0, accept_truncated: bool = False
                 ) -> Iterator[np.ndarray]:
    """Upright RGB frames at ``size``: a stream that changes size midway is scaled back to it, as ffmpeg does.
    Fewer than ``expected`` frames (the count the file's index declares) is an error unless ``accept_truncated``
    (a file without an index, such as MPEG-PS, may decode a few less than it demuxes: that is trusted)."""
    import av

    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = main_video_stream(container.streams.video)
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                turns = _quarter_turns(frame)
                if turns:
                    image = np.ascontiguousarray(np.rot90(image, turns))
                decoded += 1
                yield image if size is None or image.shape[:2] == size else resize(image, size)
    except av.error.FFmpegError as e:
        if not (accept_truncated and decoded):
            raise UserError(f"cannot decode video ({_ffmpeg_message(e)})", path=path, fix="re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4") from None
    if decoded + DECODE_SLACK < expected and not accept_truncated:
        raise UserError(f"truncated or damaged video: {decoded} of its {expected} frames decode", path=path,
                        fix=TRUNCATED_FIX)


def _count_decodable(path: Path) -> int:
    """Frames that actually decode (up to the first damaged one): the length of a truncated video."""
    count = 0
    for _ in _decode_file(path, None, accept_truncated=True):
        count += 1
    return count


def _probe_file(path: Path, accept_truncated: bool = False) -> Video:
    """Size, rate and frame count of a video file; one whose index declares more frames than the file holds
    (cut mid-download) is an error, or with ``accept_truncated`` has the frames that decode."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError("file has no video stream", path=path, fix="pass a video file")
            stream = main_video_stream(container.streams.video)
            rate = stream.average_rate or stream.guessed_rate or Fraction(DEFAULT_FOLDER_FPS)
            # Container frame counts are often missing or wrong: count by demuxing (cheap; only the first
            # frame is decoded, for the rotation that decides the displayed size).
            count, turns = 0, None
            for packet in container.demux(stream):
                count += packet.size > 0
                if turns is None:
                    try:
                        turns = next((_quarter_turns(f) for f in packet.decode()), None)
                    except av.error.FFmpegError:  # damaged data: reported when the frames are decoded
                        turns = 0
            width, height = stream.codec_context.width, stream.codec_context.height
            if turns is not None and turns % 2:
                width, height = height, width
            declared = int(stream.frames or 0)
    except av.error.FFmpegError as e:
        raise UserError(f"cannot open video ({_ffmpeg_message(e)})", path=path, fix="check that the file is a complete, playable video") from None
    if count == 0 or not width or not height:
        raise UserError("video has no frames", path=path, fix="pass a non-empty video")
    frame_size(height, width, path=path)
    if declared > count:
        if not accept_truncated:
            raise UserError(f"truncated video: it declares {declared} frames but holds {count}", path=path,
                            fix=TRUNCATED_FIX)
        count = _count_decodable(path)
        if count == 0:
            raise UserError(f"truncated video: it declares {declared} frames but none decodes", path=path,
                            fix="download or copy it again")
    return Video(path=path, fps=float(rate), height=height, width=width, num_frames=count,
                 frame_names=[f"{i:05d}.jpg" for i in range(count)], declared_frames=declared)


def frame_order(name: str) -> tuple[list[str | int], str]:
    """Sort key for frame names: digit runs compare as numbers, so unpadded 9.jpg comes before 10.jpg
    (zero-padded names keep their plain sorted order)."""
    parts: list[str | int] = [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", name))]
    return parts, name


def list_frames(folder: Path) -> list[str]:
    """Image files of a folder in frame order (``frame_order``; hidden files and sub-folders named like images
    skipped)."""
    return sorted((p.name for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()),
                  key=frame_order)


def open_video(
    path: str | Path, *, fps: float | None = None, frame_names: list[str] | None = None, title: str = "",
    accept_truncated: bool = False,
) -> Video:
    """Open a video file or a folder of JPEG/PNG frames (in ``frame_order``, or the given ``frame_names``).

    ``frame_names`` may hold sub-paths relative to ``path``, as YouTube-VIS ``file_names`` do. A video file cut
    short (it declares more frames than decode) is an error, or with ``accept_truncated`` the frames that decode.
    """
    path = input_path(path)
    if path.is_dir():
        names = list_frames(path) if frame_names is None else list(frame_names)
        if not names:
            raise UserError("folder holds no JPEG/PNG frames", path=path, fix="pass a folder of frames or a video file")
        # Headers only (cheap): a frame of another size is reported now, not hours into a job.
        height, width = image_size(path / names[0])
        frame_size(height, width, path=path / names[0], what="frame")
        for name in names[1:]:
            h, w = image_size(path / name)
            if (h, w) != (height, width):
                raise UserError(f"frame {name} is {w}x{h} but {names[0]} is {width}x{height}", path=path,
                                fix="give all frames of a video the same size")
        return Video(path=path, fps=fps or DEFAULT_FOLDER_FPS, height=height, width=width,
                     num_frames=len(names), frame_names=names, title=title)
    if path.stat().st_size == 0:
        raise UserError("file is empty (0 bytes)", path=path, fix="pass a complete video file")
    video = _probe_file(path, accept_truncated)
    if fps:
        video.fps = fps
    video.title = title
    video.accept_truncated = accept_truncated
    return video


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = DEFAULT_FOLDER_FPS) -> Path:
    """Write RGB frames to an mp4 (H.264 where the local FFmpeg has it, MPEG-4 part 2 otherwise).

    Written to a temporary file first, so an interrupted write leaves no broken video behind.
    yuv420p needs even sizes: an odd height or width loses its last row or column (cropped, so the
    remaining pixels stay where they were). Frames of another size than the first are resized to it.
    """
    import av

    from uvis.data.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        stream = None
        first_size: tuple[int, int] = (0, 0)
        try:
            for frame in frames:
                frame = to_rgb(frame)
                if stream is None:
                    stream = _add_stream(container, fps, frame.shape[1], frame.shape[0])
                    first_size = frame.shape[:2]
                if frame.shape[:2] != first_size:
                    frame = resize(frame, first_size)
                h2, w2 = stream.height, stream.width
                frame = frame[:h2, :w2]
                if frame.shape[:2] != (h2, w2):  # a 1-pixel-wide/high video: stretch to 2
                    frame = resize(frame, (h2, w2))
                frame = np.ascontiguousarray(frame)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            if stream is None:
                raise UserError("no frames to write", path=path, fix="pass at least one frame")
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
    return path


def _add_stream(container, fps: float, width: int, height: int):  # noqa: ANN001, ANN202 (PyAV types)
    rate = Fraction(fps).limit_denominator(1001)
    even_w, even_h = max(2, width - width % 2), max(2, height - height % 2)
    for codec in ("libx264", "h264", "mpeg4"):
        try:
            stream = container.add_stream(codec, rate=rate)
        except Exception:  # codec not built into this FFmpeg
            continue
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        return stream
    raise RuntimeError("no usable video encoder (libx264, h264, mpeg4) in this FFmpeg build")
