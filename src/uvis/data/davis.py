"""Import a DAVIS-2016 or DAVIS-2017 folder as a class-agnostic YouTube-VIS dataset.

Layout: ``ROOT/JPEGImages/<resolution>/<seq>/*.jpg`` and ``ROOT/Annotations/<resolution>/<seq>/*.png``.

- DAVIS-2017 masks are palette PNGs whose index k is object k: each distinct non-zero index in a
  sequence becomes one instance track, except index 255, which marks void / ignore pixels (object borders,
  unlabelled regions; also in YouTube-VOS palette masks) and is read as background. 16-bit greyscale PNGs
  (``overlay.save_id_png`` with ids >= 255) are read the same way (there 255 is an ordinary id).
- DAVIS-2016 masks are greyscale 0/255 PNGs: one foreground object per sequence. Greyscale PNGs
  whose non-zero values are all below 128 are read as instance ids too (2017 masks saved as "L").
- RGB masks (some re-exports of 2017) are read as one instance per distinct non-black colour.

Every track gets the single category "object" (DAVIS has no classes). A frame without an
annotation PNG leaves every track absent (None) on that frame, as in the 2017 test-dev split,
which annotates only the first frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from uvis.data import masks as mask_utils
from uvis.data import ytvis
from uvis.data.video import IMAGE_EXTENSIONS, image_size
from uvis.errors import UserError

DAVIS_CATEGORY = "object"
DAVIS_FPS = 24.0  # DAVIS frames are every frame of 24 fps video
VOID_INDEX = 255  # palette index of void / ignore pixels (object borders in DAVIS-2017, YouTube-VOS)


def _read_label_map(path: Path) -> tuple[np.ndarray, str]:
    """Annotation PNG → (HxW integer array of instance values, how it was read)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "P":
                labels = np.array(im)
                labels[labels == VOID_INDEX] = 0  # void / ignore regions are no object
                return labels, "palette"
            if mode in ("RGB", "RGBA", "PA"):
                rgb = np.asarray(im.convert("RGB")).astype(np.int32)
                return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], "rgb"
            if mode.startswith("I;16") or mode == "I":  # 16-bit: instance ids (uvis writes > 255 ids so)
                return np.asarray(im).astype(np.int32), "ids"
            return np.asarray(im if mode == "L" else im.convert("L")), "grey"
    except FileNotFoundError:
        raise UserError("annotation not found", path=path, fix="check the DAVIS folder") from None
    except Exception as e:
        raise UserError(f"cannot decode annotation PNG ({type(e).__name__})", path=path,
                        fix="re-export the mask as a PNG") from None


def _values(labels: np.ndarray) -> set[int]:
    """Distinct values of a label map (bincount for 8-bit maps: much faster than np.unique)."""
    if labels.dtype == np.uint8:
        return {int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=1))}
    return {int(v) for v in np.unique(labels)}


def _frame_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _sequence_tracks(
    seq: str, frame_names: list[str], ann_dir: Path, size: tuple[int, int], video_id: int,
) -> list[ytvis.Track]:
    """One track per instance value found in the sequence's annotation PNGs."""
    label_maps: list[np.ndarray | None] = []
    kinds: set[str] = set()
    for name in frame_names:
        png = ann_dir / (Path(name).stem + ".png")
        if not png.is_file():
            label_maps.append(None)
            continue
        labels, kind = _read_label_map(png)
        if labels.shape != size:
            raise UserError(
                f"sequence {seq}: annotation is {labels.shape[1]}x{labels.shape[0]} but the frames are "
                f"{size[1]}x{size[0]}",
                path=png,
                fix="use annotations and frames of the same resolution (e.g. both 480p)",
            )
        kinds.add(kind)
        label_maps.append(labels)
    present = [m for m in label_maps if m is not None]
    if not present:
        return []
    values = sorted(set().union(*(_values(m) for m in present)) - {0})
    if "grey" in kinds and values and max(values) >= 128:
        # DAVIS-2016 binary masks (0/255; anything bright is foreground): one object
        label_maps = [None if m is None else (m >= 128).view(np.uint8) for m in label_maps]
        values = [1]
    tracks: list[ytvis.Track] = []
    for value in values:
        segs: list[mask_utils.RLE | None] = []
        for m in label_maps:
            if m is None:
                segs.append(None)
                continue
            mask = m == value
            segs.append(mask_utils.encode(mask) if mask.any() else None)
        if any(s is not None for s in segs):
            tracks.append(ytvis.Track(video_id=video_id, category_id=1, segmentations=segs))
    return tracks


def load_davis(root: str | Path, *, resolution: str = "480p", sequences: list[str] | None = None) -> ytvis.Dataset:
    """Read a DAVIS folder into a Dataset (video ids 1..n in sorted sequence order, ``frame_root`` set)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError("DAVIS folder not found", path=root, fix="pass the folder that holds JPEGImages/ and Annotations/")
    frame_root = root / "JPEGImages" / resolution
    ann_root = root / "Annotations" / resolution
    if not frame_root.is_dir():
        raise UserError(f"no JPEGImages/{resolution} folder", path=root,
                        fix="pass a DAVIS root (JPEGImages/480p/<seq>/*.jpg) or choose resolution=NAME", param="resolution")
    available = sorted(p.name for p in frame_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if sequences is not None:
        unknown = sorted(set(sequences) - set(available))
        if unknown:
            raise UserError(f"unknown sequence(s) {', '.join(unknown)}", path=frame_root,
                            fix=f"choose among {', '.join(available[:10])}{' ...' if len(available) > 10 else ''}")
        available = sorted(set(sequences))
    if not available:
        raise UserError("no sequences found", path=frame_root, fix="put one folder of frames per sequence there")
    videos: list[ytvis.Video] = []
    tracks: list[ytvis.Track] = []
    for vid, seq in enumerate(available, start=1):
        names = _frame_files(frame_root / seq)
        if not names:
            raise UserError(f"sequence {seq} has no frames", path=frame_root / seq, fix="remove the empty folder")
        size = image_size(frame_root / seq / names[0])
        for name in names[1:]:
            other = image_size(frame_root / seq / name)
            if other != size:
                raise UserError(f"frame {name} is {other[1]}x{other[0]} but {names[0]} is {size[1]}x{size[0]}",
                                path=frame_root / seq, fix="give all frames of a sequence the same size")
        videos.append(ytvis.Video(id=vid, width=size[1], height=size[0],
                                  file_names=[f"{seq}/{n}" for n in names], name=seq))
        for track in _sequence_tracks(seq, names, ann_root / seq, size, vid):
            track.id = len(tracks) + 1
            tracks.append(track)
    return ytvis.Dataset(
        videos=videos,
        tracks=tracks,
        categories=[ytvis.Category(id=1, name=DAVIS_CATEGORY)],
        info={"description": f"DAVIS {resolution} imported by uvis (class-agnostic)", "source": str(root),
              "fps": DAVIS_FPS},
        frame_root=frame_root,
    )
