"""Synthetic videos with known motion: a textured object moving over a textured background that the camera
pans and zooms across, a camera moving over an empty scene, and a static shot."""

from __future__ import annotations

import numpy as np
from PIL import Image


def _texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random colour texture: blocky noise upsampled bilinearly (gives optical flow something to grip)."""
    small = rng.integers(0, 256, (h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize(((w // cell + 2) * cell, (h // cell + 2) * cell), Image.BILINEAR)
    return np.asarray(big)[:h, :w]


def camera_scene(num_frames: int = 8, height: int = 96, width: int = 128, *, with_object: bool = True,
                 pan: float = 2.0, zoom: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T, H, W, 3] and the object's masks [T, H, W] (all False without an object).

    The camera's view is a window on a large background that moves ``pan`` pixels a frame to the right and
    shrinks by ``zoom`` a frame (zooming in); the object, a textured disc, crosses the view the other way.
    """
    rng = np.random.default_rng(seed)
    big_h, big_w = height * 2, width * 3
    background = _texture(rng, big_h, big_w, 6).astype(np.float32)
    obj_tex = _texture(rng, height, width, 4).astype(np.float32)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = min(height, width) * 0.18
    for t in range(num_frames):
        scale = 1.0 - zoom * t  # view size relative to the output
        cx, cy = big_w / 3 + pan * t, big_h / 2
        src_x = cx + (xx - width / 2) * scale
        src_y = cy + (yy - height / 2) * scale
        frame = _bilinear(background, src_y, src_x)
        if with_object:
            ox, oy = width * 0.75 - 4.0 * t, height * 0.5 + 1.5 * t
            inside = (xx - ox) ** 2 + (yy - oy) ** 2 <= radius**2
            tex = _bilinear(obj_tex, yy - oy + height / 2, xx - ox + width / 2)
            frame[inside] = tex[inside]
            masks[t] = inside
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames, masks


def static_scene(num_frames: int = 6, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """The same textured frame with a little sensor noise."""
    rng = np.random.default_rng(seed)
    base = _texture(rng, height, width, 6).astype(np.int16)
    noise = rng.integers(-2, 3, (num_frames, height, width, 3))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    a, b = img[y0, x0], img[y0, x0 + 1]
    c, d = img[y0 + 1, x0], img[y0 + 1, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
