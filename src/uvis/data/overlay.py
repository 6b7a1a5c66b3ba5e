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
    """Pillow's bundled font at a size that stays readable on the frame (1/28 of its height, >= 12 px: 17 px at
    480p, 26 px at 720p); the fixed bitmap font where Pillow has no FreeType."""
    try:
        return ImageFont.load_default(size=max(12, round(frame_height / 28)))
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


Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


def _label_pad(frame_height: int) -> int:
    font = label_font(frame_height)
    return max(1, round(font.size / 8)) if hasattr(font, "size") else 1


def _box_sizes(extents: Sequence[tuple[float, float, float, float]], pad: int) -> list[tuple[int, int]]:
    return [(int(r - left) + 2 * pad, int(b - top) + 2 * pad) for left, top, r, b in extents]


def label_sizes(texts: Sequence[str], frame_height: int) -> list[tuple[int, int]]:
    """Width and height of the box of each label (text and padding) as ``draw_overlay`` draws it on a frame of
    this height: the ``sizes`` of :func:`place_labels`."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = label_font(frame_height)
    return _box_sizes([draw.textbbox((0, 0), t, font=font) for t in texts], _label_pad(frame_height))


def _overlaps(box: Box, placed: np.ndarray) -> np.ndarray:
    return ((placed[:, 0] < box[2]) & (box[0] < placed[:, 2]) & (placed[:, 1] < box[3]) & (box[1] < placed[:, 3]))


def label_anchor(mask: np.ndarray) -> tuple[int, int, int]:
    """The point of a mask farthest inside it (x, y) and its distance to the mask's edge, in pixels.

    A label centred there sits on the object itself whatever its shape (a ring's label is on the ring, not in
    its hole; a large mask's label is at its middle, not at the image corner). Computed on a grid of at most
    ~128 px for speed.
    """
    from scipy.ndimage import distance_transform_edt

    h, w = mask.shape
    step = max(1, max(h, w) // 128)
    small = np.pad(mask[::step, ::step], 1)
    dist = distance_transform_edt(small)[1:-1, 1:-1]
    # of the points nearly as deep as the deepest, the one nearest the mask's centre (a wide band's middle)
    ys, xs = np.nonzero(dist >= 0.9 * dist.max())
    cy, cx = (np.mean(a) for a in np.nonzero(dist > 0))
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    y, x = int(ys[k]), int(xs[k])
    return x * step + step // 2, y * step + step // 2, int(dist[y, x] * step)


def place_labels(masks: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], height: int, width: int,
                 ) -> list[Box | None]:
    """Where to draw each mask's label box (``sizes``: width, height), in order, so that no two boxes overlap.

    The rule, per label in the given order (best track first, so it gets the best spot):

    1. the preferred spot: centred on the mask's inmost point (``label_anchor``) when the mask is wide enough
       around it to hold the box, otherwise just above the mask (below it at the frame's top), centred on that
       point's column;
    2. kept inside the frame;
    3. if it overlaps a label placed before, the nearest free spot (on a grid of half a label height), so a
       label never hides another.

    A label that fits nowhere (the frame is full of labels) gets None and is not drawn. Empty masks get None.
    """
    placed = np.zeros((0, 4), np.int64)
    out: list[Box | None] = []
    for mask, (tw, th) in zip(masks, sizes, strict=True):
        if not mask.any() or tw > width or th > height:
            out.append(None)
            continue
        ax, ay, depth = label_anchor(mask)
        ys = np.nonzero(mask.any(axis=1))[0]
        if 2 * depth >= th and 2 * depth >= min(tw, 3 * th):
            x0, y0 = ax - tw // 2, ay - th // 2
        else:
            x0 = ax - tw // 2
            y0 = int(ys[0]) - th - 1 if ys[0] - th - 1 >= 0 else int(ys[-1]) + 2
        x0, y0 = min(max(x0, 0), width - tw), min(max(y0, 0), height - th)
        box: Box = (x0, y0, x0 + tw, y0 + th)
        if len(placed) and _overlaps(box, placed).any():
            box = _nearest_free(x0, y0, tw, th, placed, height, width)
        if box is not None:
            placed = np.vstack([placed, np.asarray(box)[None]])
        out.append(box)
    return out


def _nearest_free(x0: int, y0: int, tw: int, th: int, placed: np.ndarray, height: int, width: int) -> Box | None:
    """The free box nearest to (x0, y0) on a grid of half a label height inside the frame, or None."""
    step = max(2, th // 2)
    xs = np.unique(np.clip(np.concatenate([np.arange(x0 % step, width - tw + 1, step), [x0, width - tw]]), 0,
                           width - tw))
    ys = np.unique(np.clip(np.concatenate([np.arange(y0 % step, height - th + 1, step), [y0, height - th]]), 0,
                           height - th))
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    # vertical moves cost a little more: a label beside its spot reads better than one far above it
    order = np.argsort((gx - x0) ** 2 + 2 * (gy - y0) ** 2, kind="stable")
    gx, gy = gx[order], gy[order]
    free = np.ones(len(gx), bool)
    for left, top, right, bottom in placed:
        free &= ~((left < gx + tw) & (gx < right) & (top < gy + th) & (gy < bottom))
    hit = np.flatnonzero(free)
    if not len(hit):
        return None
    x, y = int(gx[hit[0]]), int(gy[hit[0]])
    return x, y, x + tw, y + th


def draw_overlay(
    frame: np.ndarray,
    masks: np.ndarray,
    track_ids: Sequence[int],
    labels: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend each mask's colour over ``frame``, outline it, and write its label at it.

    Masks are drawn in the given order (the last on top); labels are placed best first, i.e. from the last
    mask to the first, by :func:`place_labels`, so no label hides another. A label moved off its mask gets a
    line to it. ``labels`` are free text such as ``"3 dog 0.87"``; masks of another size than the frame are
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
    font, pad = label_font(h), _label_pad(h)
    # a label goes on the part of its mask that is seen: masks drawn later cover earlier ones
    seen: list[np.ndarray] = [np.zeros(0, bool)] * len(fitted)
    above = np.zeros((h, w), bool)
    for i in reversed(range(len(fitted))):
        visible = fitted[i] & ~above
        seen[i] = visible if visible.any() else fitted[i]
        above |= fitted[i]
    todo = [i for i in reversed(range(len(fitted))) if labels[i] and fitted[i].any()]  # best (drawn last) first
    extents = [draw.textbbox((0, 0), labels[i], font=font) for i in todo]
    boxes = place_labels([seen[i] for i in todo], _box_sizes(extents, pad), h, w)
    for i, box in zip(todo, boxes, strict=True):
        if box is None:
            continue
        colour = colour_for(track_ids[i])
        x0, y0, x1, y1 = box
        near = seen[i][max(0, y0 - 3 * pad):y1 + 3 * pad, max(0, x0 - 3 * pad):x1 + 3 * pad]
        if not near.any():  # moved away from its mask: a line back to it
            ax, ay, _ = label_anchor(seen[i])
            cx, cy = min(max(ax, x0), x1 - 1), min(max(ay, y0), y1 - 1)
            draw.line((cx, cy, ax, ay), fill=colour, width=max(1, pad))
            draw.ellipse((ax - 2 * pad, ay - 2 * pad, ax + 2 * pad, ay + 2 * pad), fill=colour)
    for i, (left, top, _, _), box in zip(todo, extents, boxes, strict=True):
        if box is None:
            continue
        colour = colour_for(track_ids[i])
        x0, y0, x1, y1 = box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)
        ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
        draw.text((x0 + pad - left, y0 + pad - top), labels[i], fill=ink, font=font)
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
