"""Binary masks as COCO run-length encoding (RLE), through pycocotools.

Every mask that crosses a file boundary in uvis is a COCO RLE dict
``{"size": [h, w], "counts": str}`` with ``counts`` as the compressed string form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

RLE = dict[str, Any]


def encode(mask: np.ndarray) -> RLE:
    """Encode one HxW boolean/0-1 mask as a JSON-ready RLE."""
    if mask.ndim != 2:
        raise ValueError(f"encode expects an HxW mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def encode_many(masks: np.ndarray) -> list[RLE]:
    """Encode an NxHxW stack of masks in one pycocotools call."""
    if masks.ndim != 3:
        raise ValueError(f"encode_many expects NxHxW masks, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = coco_mask.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")} for r in rles]


def _to_coco(rle: RLE) -> RLE:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE, as in some annotation files
        return coco_mask.frPyObjects(rle, int(rle["size"][0]), int(rle["size"][1]))
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: RLE) -> np.ndarray:
    """Decode one RLE (compressed or uncompressed counts) to an HxW bool mask."""
    return coco_mask.decode(_to_coco(rle)).astype(bool)


def area(rle: RLE) -> int:
    return int(coco_mask.area(_to_coco(rle)))


def bbox(rle: RLE) -> list[float]:
    """Box as [x, y, w, h], as COCO writes it."""
    return [float(v) for v in coco_mask.toBbox(_to_coco(rle))]


def from_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> RLE:
    """Rasterise COCO polygons ([[x1, y1, x2, y2, ...], ...]) into one RLE.

    A single flat polygon ``[x1, y1, ...]`` is accepted too. Polygons with fewer than three points
    enclose nothing and are dropped (pycocotools would read a 4-number list as a box); no polygon
    left gives an empty mask.
    """
    if len(polygons) and isinstance(polygons[0], (int, float)):
        polygons = [polygons]  # type: ignore[list-item]
    polys = [list(map(float, p)) for p in polygons]
    for p in polys:
        if len(p) % 2:
            raise ValueError(f"a polygon has an odd number of coordinates ({len(p)})")
    polys = [p for p in polys if len(p) >= 6]
    if not polys:
        return encode(np.zeros((height, width), dtype=bool))
    merged = coco_mask.merge(coco_mask.frPyObjects(polys, height, width))
    return {"size": [height, width], "counts": merged["counts"].decode("ascii")}


def normalize(segmentation: Any, height: int, width: int) -> RLE | None:
    """Turn any YouTube-VIS per-frame segmentation (RLE, polygons or null) into compressed RLE."""
    if segmentation is None:
        return None
    if isinstance(segmentation, list):
        return from_polygons(segmentation, height, width)
    coco = _to_coco(segmentation)
    return {"size": [int(coco["size"][0]), int(coco["size"][1])], "counts": coco["counts"].decode("ascii")}
