"""Pictures of results for people: coloured mask overlays, instance-id PNGs, contact sheets.

Colours depend only on the track id, so one object keeps its colour through a video and across
runs. Id PNGs follow the DAVIS convention (palette PNG, index k = object k) so ``load_davis`` and
common VOS tools read them back; more than 255 ids fall back to a 16-bit greyscale PNG.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from uvis.data.atomic import write_with
from uvis.data.video import resize, to_rgb

_GOLDEN = 0.618033988749895


@functools.lru_cache(maxsize=8)
def label_font(frame_height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at a size that stays readable on the frame (about 1/36 of its height, >= 10 px);
    the fixed bitmap font where Pillow has no FreeType."""
    try:
        return ImageFont.load_default(size=max(10, round(frame_height / 36)))
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def colour_for(track_id: int) -> tuple[int, int, int]:
    """A stable, bright colour for a track id; consecutive ids get far-apart hues."""
    tid = int(track_id)
    hue = (tid * _GOLDEN) % 1.0
    sat = (0.95, 0.7, 0.85)[tid % 3]
    val = (0.95, 0.8, 1.0, 0.7)[(tid // 3) % 4]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (image borders count as outside)."""
    pad = np.pad(mask, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~inner


def _fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (height, width):
        mask = resize(mask.astype(np.uint8) * 255, (height, width), nearest=True) > 127
    return mask


def draw_overlay(
    frame: np.ndarray,
    masks: np.ndarray,
    track_ids: Sequence[int],
    labels: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend each mask's colour over ``frame``, outline it, and write its label near its top-left.

    ``labels`` are free text such as ``"3 dog 0.87"``; masks of another size than the frame are
    resized (nearest). Returns a new HxWx3 uint8 image; ``frame`` is left unchanged.
    """
    out = to_rgb(np.asarray(frame)).astype(np.float32)
    h, w = out.shape[:2]
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if len(masks) != len(track_ids) or (labels is not None and len(labels) != len(track_ids)):
        raise ValueError(f"{len(masks)} masks, {len(track_ids)} track ids and "
                         f"{len(labels) if labels is not None else 'no'} labels: they must match")
    fitted = [_fit_mask(m, h, w) for m in masks]
    for mask, tid in zip(fitted, track_ids, strict=True):
        colour = np.array(colour_for(tid), np.float32)
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        out[_boundary(mask)] = colour
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if not labels:
        return image
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = label_font(h)
    for mask, tid, text in zip(fitted, track_ids, labels, strict=True):
        if not text or not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2, bottom - top + 2
        x = int(min(max(xs.min(), 0), max(w - tw, 0)))
        y = int(ys.min()) - th - 1
        if y < 0:  # no room above the mask: put the label just inside it
            y = int(min(ys.min(), max(h - th, 0)))
        colour = colour_for(tid)
        draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=colour)
        ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
        draw.text((x + 1 - left, y + 1 - top), text, fill=ink, font=font)
    return np.asarray(pil)


def instance_id_map(masks: np.ndarray, track_ids: Sequence[int], height: int, width: int) -> np.ndarray:
    """One HxW map: pixel value = track id of the mask covering it (0 = background).

    Where masks overlap the first one wins (pass masks best-first). uint8 when every id < 256,
    uint16 otherwise.
    """
    ids = [int(t) for t in track_ids]
    if any(t <= 0 or t > 65535 for t in ids):
        raise ValueError("track ids must be in 1..65535 (0 is the background)")
    dtype = np.uint8 if not ids or max(ids) < 256 else np.uint16
    out = np.zeros((height, width), dtype=dtype)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if len(masks) != len(ids):
        raise ValueError(f"{len(masks)} masks but {len(ids)} track ids")
    for mask, tid in zip(masks, ids, strict=True):
        m = _fit_mask(mask, height, width) & (out == 0)
        out[m] = tid
    return out


def _palette() -> list[int]:
    pal = [0, 0, 0]
    for k in range(1, 256):
        pal.extend(colour_for(k))
    return pal


def save_id_png(path: str | Path, id_map: np.ndarray) -> Path:
    """Write an id map as a palette PNG (ids < 255, colours from :func:`colour_for`) or a 16-bit PNG; atomic.

    Id 255 goes to a 16-bit PNG: palette index 255 means void / ignore in DAVIS-style masks (``uvis.data.davis``).
    """
    path = Path(path)
    id_map = np.asarray(id_map)
    if id_map.ndim != 2:
        raise ValueError(f"id map must be HxW, got shape {id_map.shape}")
    if id_map.size and (id_map.min() < 0 or id_map.max() > 65535):
        raise ValueError("ids must be in 0..65535")
    if not id_map.size or id_map.max() < 255:
        image = Image.fromarray(id_map.astype(np.uint8), mode="P")
        image.putpalette(_palette())
    else:
        image = Image.fromarray(id_map.astype(np.uint16))
    write_with(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def contact_sheet(
    images: Sequence[np.ndarray], cols: int = 4, thumb_width: int = 240, *, gap: int = 2, background: int = 255,
) -> np.ndarray:
    """Tile images into a grid of ``cols`` columns, each scaled to ``thumb_width`` wide (aspect kept).

    Every cell is as tall as the tallest thumbnail; thumbnails sit at the cell's top-left, with
    ``gap`` pixels of ``background`` between cells.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if cols < 1 or thumb_width < 1:
        raise ValueError("cols and thumb_width must be >= 1")
    thumbs = []
    for im in images:
        im = to_rgb(np.asarray(im))
        th = max(1, round(im.shape[0] * thumb_width / im.shape[1]))
        thumbs.append(resize(im, (th, thumb_width)))
    cell_h = max(t.shape[0] for t in thumbs)
    cols = min(cols, len(thumbs))
    rows = -(-len(thumbs) // cols)
    sheet = np.full((rows * cell_h + (rows - 1) * gap, cols * thumb_width + (cols - 1) * gap, 3), background, np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, cols)
        y, x = r * (cell_h + gap), c * (thumb_width + gap)
        sheet[y:y + t.shape[0], x:x + thumb_width] = t
    return sheet
