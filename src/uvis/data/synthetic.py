"""Synthetic videos with exact ground truth, for tests, demos and smoke-training.

Each video shows textured shapes moving over a textured grey background. Every shape class has
its own two-colour palette and pattern, so a model can learn the class from appearance as well
as from shape. Objects move linearly with a little jitter, occlude each other in a fixed depth
order and (optionally) enter or leave the frame, so tracks have frames with empty masks.

Pixels are exact: the background is strictly grey (r == g == b) and every visible object pixel
has one of its class's two (saturated) colours. Frames are written as PNG by default, so the
saved images keep this exactness (JPEG would blur colours across mask borders).
Everything is deterministic from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvis.data import masks as mask_utils
from uvis.data import ytvis

SYNTHETIC_CLASSES: list[str] = ["disc", "square", "triangle", "ring", "cross"]
#: Playback rate of synthetic videos (their frame folders record it as ``info.fps``).
SYNTHETIC_FPS = 10.0

# Two saturated colours per class (never grey, so they can't be confused with the background).
CLASS_PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "disc": ((220, 40, 40), (250, 150, 30)),
    "square": ((30, 60, 220), (40, 200, 230)),
    "triangle": ((40, 170, 60), (230, 220, 40)),
    "ring": ((190, 40, 190), (250, 140, 210)),
    "cross": ((140, 80, 20), (30, 150, 140)),
}


@dataclass
class SyntheticVideo:
    """A rendered video and its ground truth.

    ``masks`` are the visible masks (after occlusion); ``amodal_masks`` the full shapes.
    ``depth[n]`` is object n's drawing rank (0 = back, drawn first).
    """

    frames: np.ndarray  # [T, H, W, 3] uint8
    masks: np.ndarray  # [N, T, H, W] bool
    category_ids: list[int]  # 1-based into SYNTHETIC_CLASSES
    amodal_masks: np.ndarray  # [N, T, H, W] bool
    depth: list[int]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[0])

    def class_names(self) -> list[str]:
        return [SYNTHETIC_CLASSES[c - 1] for c in self.category_ids]


# ----------------------------------------------------------------------------- shapes and textures

def _shape(name: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean shape of radius ``r`` from offsets to its centre."""
    if name == "disc":
        return dx * dx + dy * dy <= r * r
    if name == "square":
        s = 0.85 * r
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if name == "triangle":  # apex up, base at 0.8 r below the centre
        frac = (dy + r) / (1.8 * r)
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= frac * r)
    if name == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if name == "cross":
        arm = 0.32 * r
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    raise ValueError(f"unknown synthetic class {name!r}")


def _pattern(name: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Which of the two palette colours each pixel gets; the pattern moves with the object."""
    ix, iy = np.floor(dx).astype(np.int64), np.floor(dy).astype(np.int64)
    if name == "disc":  # horizontal stripes
        return (iy // 3) % 2 == 0
    if name == "square":  # checkerboard
        return ((ix // 3) + (iy // 3)) % 2 == 0
    if name == "triangle":  # vertical stripes
        return (ix // 3) % 2 == 0
    if name == "ring":  # diagonal stripes
        return ((ix + iy) // 3) % 2 == 0
    if name == "cross":  # dots
        return (ix % 4 < 2) & (iy % 4 < 2)
    raise ValueError(f"unknown synthetic class {name!r}")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Grey textured background: a gradient, soft blobs and fine grain, all with r == g == b."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1)) * 40.0
    # low-frequency noise: a coarse random grid upsampled by repetition, then smoothed by averaging
    cell = 8
    coarse = rng.uniform(-25, 25, size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    blobs = np.kron(coarse, np.ones((cell, cell), np.float32))[:height, :width]
    k = cell // 2
    pad = np.pad(blobs, k, mode="edge")
    blobs = sum(pad[i:i + height, j:j + width] for i in range(0, 2 * k + 1, 2) for j in range(0, 2 * k + 1, 2))
    blobs = blobs / ((k + 1) ** 2)
    grain = rng.normal(0, 6, size=(height, width)).astype(np.float32)
    grey = np.clip(120 + grad + blobs + grain, 30, 220).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


# ----------------------------------------------------------------------------- trajectories

def _trajectories(
    rng: np.random.Generator, num_frames: int, height: int, width: int, radii: np.ndarray,
    *, occlusion: bool, enter_leave: bool,
) -> np.ndarray:
    """Centres [N, T, 2] (x, y): linear motion through a mid-video point, plus small jitter.

    With ``enter_leave`` object 0 starts fully left of the frame and object 1 ends fully right of it;
    with ``occlusion`` object 1 (or the last one) passes over object 0 at mid-video.
    """
    n = len(radii)
    tm = (num_frames - 1) / 2.0
    t = np.arange(num_frames, dtype=np.float64) - tm
    mids = np.stack([rng.uniform(0.25, 0.75, n) * width, rng.uniform(0.3, 0.7, n) * height], axis=1)
    speed = 0.6 * min(height, width) / max(num_frames, 1)
    vel = rng.uniform(-1, 1, size=(n, 2)) * speed
    if occlusion and n >= 2:
        j = 1
        ang = rng.uniform(0, 2 * np.pi)
        off = 0.6 * max(radii[0], radii[j])
        mids[j] = mids[0] + off * np.array([np.cos(ang), np.sin(ang)])
        mids[j] = np.clip(mids[j], [radii[j], radii[j]], [width - radii[j], height - radii[j]])
    if enter_leave and num_frames >= 2:
        margin = 3.0
        # object 0 enters from the left: at t=0 its right edge is left of x=0
        vx = (mids[0, 0] + radii[0] + margin) / tm
        vel[0, 0] = max(vel[0, 0], vx)
        if n >= 2:  # object 1 leaves on the right: at t=T-1 its left edge is right of x=W
            vx = (width + radii[1] + margin - mids[1, 0]) / tm
            vel[1, 0] = max(vel[1, 0], vx)
    jitter = np.clip(rng.normal(0, 0.6, size=(n, num_frames, 2)), -1.5, 1.5)
    return mids[:, None, :] + vel[:, None, :] * t[None, :, None] + jitter


# ----------------------------------------------------------------------------- rendering

def render_video(
    num_frames: int = 8, height: int = 64, width: int = 96, num_objects: int = 3, seed: int = 0,
    *, occlusion: bool = True, enter_leave: bool = True,
) -> SyntheticVideo:
    """Render one video and its visible (occlusion-aware) masks, deterministically from ``seed``."""
    if num_frames < 1 or height < 8 or width < 8 or num_objects < 0:
        raise ValueError("need num_frames >= 1, height and width >= 8, num_objects >= 0")
    rng = np.random.default_rng(seed)
    bg = _background(rng, height, width)
    if num_objects <= len(SYNTHETIC_CLASSES):
        classes = rng.permutation(len(SYNTHETIC_CLASSES))[:num_objects]
    else:
        classes = rng.integers(0, len(SYNTHETIC_CLASSES), size=num_objects)
    category_ids = [int(c) + 1 for c in classes]
    radii = rng.uniform(0.14, 0.24, num_objects) * min(height, width)
    centres = _trajectories(rng, num_frames, height, width, radii, occlusion=occlusion, enter_leave=enter_leave)
    depth = [int(d) for d in rng.permutation(num_objects)]

    frames = np.repeat(bg[None], num_frames, axis=0)
    amodal = np.zeros((num_objects, num_frames, height, width), dtype=bool)
    owner = np.full((num_frames, height, width), -1, dtype=np.int64)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    order = sorted(range(num_objects), key=lambda i: depth[i])  # back to front
    for i in order:
        name = SYNTHETIC_CLASSES[category_ids[i] - 1]
        c0, c1 = (np.array(c, dtype=np.uint8) for c in CLASS_PALETTES[name])
        for t in range(num_frames):
            dx, dy = xx - centres[i, t, 0], yy - centres[i, t, 1]
            shape = _shape(name, dx, dy, radii[i])
            amodal[i, t] = shape
            if not shape.any():
                continue
            pat = _pattern(name, dx, dy)
            frames[t][shape] = np.where(pat[shape][:, None], c0, c1)
            owner[t][shape] = i
    visible = owner[None] == np.arange(num_objects)[:, None, None, None]
    return SyntheticVideo(frames=frames, masks=visible, category_ids=category_ids, amodal_masks=amodal, depth=depth)


def _video_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_dataset(
    out_dir: str | Path, num_videos: int = 2, num_frames: int = 8, height: int = 64, width: int = 96,
    num_objects: int = 3, seed: int = 0, *, image_format: str = "png", **kw: bool,
) -> ytvis.Dataset:
    """Write a YouTube-VIS-style dataset of synthetic videos and return it (with ``frame_root`` set).

    Layout: ``out_dir/JPEGImages/synth_0000/00000.png ...`` (PNG by default: lossless, so saved pixels
    match the masks exactly; ``image_format="jpg"`` for realistic JPEG) and ``out_dir/annotations.json``.
    Extra keywords (``occlusion``, ``enter_leave``) go to :func:`render_video`.
    """
    from PIL import Image

    from uvis.data import atomic

    ext = image_format.lower().lstrip(".")
    if ext not in ("png", "jpg", "jpeg"):
        raise ValueError(f"image_format must be png or jpg, got {image_format!r}")
    out_dir = Path(out_dir)
    frame_root = out_dir / "JPEGImages"
    videos: list[ytvis.Video] = []
    tracks: list[ytvis.Track] = []
    for v in range(num_videos):
        sv = render_video(num_frames, height, width, num_objects, _video_seed(seed, v), **kw)
        name = f"synth_{v:04d}"
        folder = frame_root / name
        folder.mkdir(parents=True, exist_ok=True)
        file_names = []
        for t, frame in enumerate(sv.frames):
            fname = f"{t:05d}.{ext}"
            atomic.write_with(folder / fname, lambda p, f=frame: Image.fromarray(f).save(
                p, format="PNG" if ext == "png" else "JPEG", **({} if ext == "png" else {"quality": 95})))
            file_names.append(f"{name}/{fname}")
        videos.append(ytvis.Video(id=v + 1, width=width, height=height, file_names=file_names, name=name))
        for n in range(sv.num_objects):
            rles = mask_utils.encode_many(sv.masks[n]) if num_frames else []
            segs = [rle if sv.masks[n, t].any() else None for t, rle in enumerate(rles)]
            if all(s is None for s in segs):
                continue  # an object never visible is no ground truth
            tracks.append(ytvis.Track(video_id=v + 1, category_id=sv.category_ids[n], segmentations=segs,
                                      id=len(tracks) + 1))
    categories = [ytvis.Category(id=i + 1, name=n, supercategory="shape") for i, n in enumerate(SYNTHETIC_CLASSES)]
    dataset = ytvis.Dataset(videos=videos, tracks=tracks, categories=categories,
                            info={"description": "uvis synthetic shapes", "seed": seed, "fps": SYNTHETIC_FPS},
                            frame_root=frame_root)
    dataset.save(out_dir / "annotations.json")
    return dataset


def write_video_file(
    path: str | Path, num_frames: int = 8, height: int = 64, width: int = 96, num_objects: int = 3,
    seed: int = 0, *, fps: float = SYNTHETIC_FPS, **kw: bool,
) -> SyntheticVideo:
    """Render a synthetic video and write it as an mp4 (lossy); returns the exact rendering."""
    from uvis.data.video import write_video

    sv = render_video(num_frames, height, width, num_objects, seed, **kw)
    write_video(path, list(sv.frames), fps=fps)
    return sv


__all__: list[str] = [
    "CLASS_PALETTES", "SYNTHETIC_CLASSES", "SyntheticVideo", "make_dataset", "render_video", "write_video_file",
]
