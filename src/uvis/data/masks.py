"""Binary masks as COCO run-length encoding (RLE), through pycocotools: the one mask API of uvis.

Every mask that crosses a file boundary in uvis is a COCO RLE dict
``{"size": [h, w], "counts": str}`` with ``counts`` as the compressed string form.

pycocotools-style functions: ``encode`` / ``decode``, ``to_coco`` (any counts form -> pycocotools' bytes form),
``area`` / ``areas``, ``bbox``, ``iou`` (a [len(a), len(b)] array, with COCO's crowd rule) and ``merge``.
Nothing else in uvis calls pycocotools.
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


def encode_tensor(masks: Any) -> list[RLE]:
    """Encode an NxHxW boolean ``torch.Tensor`` on any device; identical to ``encode_many``.

    The run boundaries are found where the masks are (a GPU: one comparison and one ``nonzero`` for the whole
    stack), so only the boundary positions cross to the host, not N*H*W mask bytes, and pycocotools only
    compresses the run lengths. On a GPU this keeps RLE encoding from serialising a batched pipeline.
    """
    n, h, w = masks.shape
    if n == 0:
        return []
    flat = masks.transpose(1, 2).reshape(n, h * w)  # column-major, the order COCO runs follow
    rows, cols = (flat[:, 1:] != flat[:, :-1]).nonzero(as_tuple=True)
    first = flat[:, 0].cpu().numpy()
    rows, cols = rows.cpu().numpy(), cols.cpu().numpy() + 1  # a new run starts after each change
    split = np.searchsorted(rows, np.arange(n + 1))
    out = []
    for i in range(n):
        edges = np.concatenate(([0], cols[split[i] : split[i + 1]], [h * w]))
        counts = np.diff(edges)
        if first[i]:  # COCO runs start with the (possibly empty) run of zeros
            counts = np.concatenate(([0], counts))
        rle = coco_mask.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        out.append({"size": [h, w], "counts": rle["counts"].decode("ascii")})
    return out


def to_coco(rle: RLE) -> RLE:
    """The form pycocotools takes: uncompressed counts (a list, as in some annotation files) are compressed,
    a ``str`` counts string becomes ``bytes``."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return coco_mask.frPyObjects(rle, int(rle["size"][0]), int(rle["size"][1]))
    if isinstance(counts, bytes):  # already pycocotools' own form (converted once, used many times)
        return rle
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: RLE) -> np.ndarray:
    """Decode one RLE (compressed or uncompressed counts) to an HxW bool mask."""
    return coco_mask.decode(to_coco(rle)).astype(bool)


def area(rle: RLE) -> int:
    return int(coco_mask.area(to_coco(rle)))


# pycocotools 2.0.11 + numpy 2 overflows in mask.area for lists longer than 255: it is called in chunks
_AREA_CHUNK = 255


def areas(rles: Sequence[RLE]) -> np.ndarray:
    """[N] int64 pixel counts of many RLEs (pycocotools' batched ``area``)."""
    coco = [to_coco(r) for r in rles]
    if not coco:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(coco_mask.area(coco[i : i + _AREA_CHUNK]), dtype=np.int64)
                           for i in range(0, len(coco), _AREA_CHUNK)])


def bbox(rle: RLE) -> list[float]:
    """Box as [x, y, w, h], as COCO writes it."""
    return [float(v) for v in coco_mask.toBbox(to_coco(rle))]


def iou(a: Sequence[RLE], b: Sequence[RLE], crowd: bool | Sequence[bool] = False) -> np.ndarray:
    """[len(a), len(b)] float64 mask IoU, pycocotools' ``iou`` (two empty masks give 0). With ``crowd`` (one flag
    for all of ``b``, or one per mask of ``b``) the ratio for a crowd mask ``g`` is |a ∩ g| / |a|, as COCO
    scores crowd regions (NaN for an empty ``a``)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    flags = [int(bool(crowd))] * len(b) if isinstance(crowd, bool) else [int(bool(c)) for c in crowd]
    out = coco_mask.iou([to_coco(r) for r in a], [to_coco(r) for r in b], flags)
    return np.asarray(out, dtype=np.float64).reshape(len(a), len(b))


def merge(rles: Sequence[RLE], *, intersect: bool = False) -> RLE:
    """The union (or with ``intersect`` the intersection) of same-sized RLEs, JSON-ready."""
    if not rles:
        raise ValueError("merge needs at least one mask")
    out = coco_mask.merge([to_coco(r) for r in rles], intersect=int(intersect))
    return {"size": [int(out["size"][0]), int(out["size"][1])], "counts": out["counts"].decode("ascii")}


# Polygon coordinates may reach this many frame sizes, plus a fixed slack, beyond the frame (pycocotools clips them;
# its memory grows with the outline's length, so a 1e10 must be refused, not rasterised)
POLYGON_MARGIN = 4
POLYGON_SLACK = 10_000


def empty(height: int, width: int) -> RLE:
    """The all-background mask, encoded without allocating the frame (its size may be anything)."""
    coco = coco_mask.frPyObjects({"size": [height, width], "counts": [height * width]}, height, width)
    return {"size": [height, width], "counts": coco["counts"].decode("ascii")}


def from_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> RLE:
    """Rasterise COCO polygons ([[x1, y1, x2, y2, ...], ...]) into one RLE.

    A single flat polygon ``[x1, y1, ...]`` is accepted too. Polygons with fewer than three points
    enclose nothing and are dropped (pycocotools would read a 4-number list as a box); no polygon
    left gives an empty mask.
    """
    if len(polygons) and isinstance(polygons[0], (int, float)):
        polygons = [polygons]  # type: ignore[list-item]
    polys = [list(map(float, p)) for p in polygons]
    bound = POLYGON_MARGIN * max(height, width) + POLYGON_SLACK
    for p in polys:
        if len(p) % 2:
            raise ValueError(f"a polygon has an odd number of coordinates ({len(p)})")
        # pycocotools rasterises the outline point by point: a NaN or a huge coordinate makes it allocate
        # without bound (or crash), so coordinates must be finite and near the frame
        if p and not (np.isfinite(p).all() and -bound <= min(p) and max(p) <= bound):
            bad = next(v for v in p if not (np.isfinite(v) and abs(v) <= bound))
            raise ValueError(f"a polygon coordinate is {bad!r}, outside the {width}x{height} frame "
                             f"(allowed: finite, within {bound:g} pixels)")
    polys = [p for p in polys if len(p) >= 6]
    if not polys:
        return empty(height, width)
    merged = coco_mask.merge(coco_mask.frPyObjects(polys, height, width))
    return {"size": [height, width], "counts": merged["counts"].decode("ascii")}


def run_lengths(counts: str | bytes) -> np.ndarray:
    """The run lengths that a compressed COCO counts string stands for (vectorised LEB128-like decode).

    Mirrors pycocotools' ``rleFrString``: 6-bit characters from '0', 5 data bits each, bit 0x20 marks
    "more characters follow", bit 0x10 of the last character is the sign, and from the fourth run on
    a run is stored as the difference to the run two places before it.
    """
    raw = np.frombuffer(counts.encode("ascii") if isinstance(counts, str) else bytes(counts), dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = raw.astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE counts string holds characters outside '0'..'o'")
    ends = c < 0x20
    endpos = np.flatnonzero(ends)
    if not ends[-1]:
        raise ValueError("RLE counts string ends in the middle of a number")
    starts = np.empty_like(endpos)
    starts[0] = 0
    starts[1:] = endpos[:-1] + 1
    nchars = endpos - starts + 1
    if nchars.max() > 12:
        raise ValueError("RLE counts string holds a number too large for a mask")
    start_marks = np.zeros(len(c), dtype=np.int64)
    start_marks[starts] = starts
    k = np.arange(len(c)) - np.maximum.accumulate(start_marks)  # position of each character in its number
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[endpos] & 0x10) != 0
    if negative.any():
        x[negative] -= np.int64(1) << (5 * nchars[negative])
    x[1::2] = np.cumsum(x[1::2])
    x[2::2] = np.cumsum(x[2::2])
    return x


def check(rle: RLE) -> None:
    """Raise ValueError unless the runs of ``rle`` are non-negative and cover exactly its h*w pixels.

    pycocotools does not check this: with too few runs ``decode`` returns uninitialised memory and
    ``iou``/``merge`` loop forever; too many are rejected by ``decode`` only.
    """
    size = rle["size"]
    h, w = int(size[0]), int(size[1])
    if h < 0 or w < 0 or len(size) != 2:
        raise ValueError(f"RLE size {list(size)} is not [height, width]")
    counts = rle["counts"]
    runs = np.asarray(counts, dtype=np.int64) if isinstance(counts, list) else run_lengths(counts)
    if runs.size and runs.min() < 0:
        raise ValueError("RLE has a negative run length")
    if int(runs.sum()) != h * w:
        raise ValueError(f"RLE runs cover {int(runs.sum())} pixels but the mask is {h}x{w}={h * w}")


_CHUNK_CHARS = 1 << 21  # characters per vectorised pass of check_many: bounds its temporary memory


def check_many(rles: Sequence[RLE]) -> int | None:
    """Index of the first RLE that ``check`` would reject, or None: the same test, vectorised over many masks.

    Loading a file checks every mask, so this works on ~2M characters per numpy pass instead of a dozen
    numpy calls per mask: about 10-20 us per smooth 720p mask (benchmarks/bench_rle_check.py).
    """
    start = 0
    while start < len(rles):
        stop, chars = start, 0
        while stop < len(rles) and (stop == start or chars < _CHUNK_CHARS):
            counts = rles[stop]["counts"]
            chars += len(counts) if isinstance(counts, (str, bytes)) else 0
            stop += 1
        bad = _first_bad(rles[start:stop])
        if bad is not None:
            return start + bad
        start = stop
    return None


def _check_one(rle: RLE) -> bool:
    try:
        check(rle)
    except (ValueError, TypeError, IndexError, UnicodeError):
        return False
    return True


def _first_bad(rles: Sequence[RLE]) -> int | None:
    """``check_many`` on one chunk; anything unusual falls back to checking mask by mask."""
    def slow() -> int | None:
        return next((i for i, r in enumerate(rles) if not _check_one(r)), None)

    try:
        strs = [r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"] for r in rles]
        pixels = np.array([int(r["size"][0]) * int(r["size"][1]) for r in rles], dtype=np.int64)
    except (UnicodeError, TypeError, ValueError, IndexError, KeyError):
        return slow()
    if not all(isinstance(b, bytes) and b for b in strs) or any(len(r["size"]) != 2 for r in rles):
        return slow()  # uncompressed counts, empty strings or odd sizes: rare, checked one by one
    n = len(strs)
    lengths = np.fromiter((len(b) for b in strs), dtype=np.int64, count=n)
    c = np.frombuffer(b"".join(strs), dtype=np.uint8) - np.uint8(48)  # wraps below '0': caught as > 63
    if c.max() > 63:
        return slow()
    ends = c < 0x20
    char_end = np.cumsum(lengths)
    if not ends[char_end - 1].all():  # a number runs over the end of its mask's string
        return slow()
    if ends.all():  # every number is one character (the common case): sign-extend 5 bits, no gathering
        first = char_end - lengths  # index of each mask's first number
        nnum = lengths
        x = ((c & 0x1F) ^ 0x10).astype(np.int8) - np.int8(16)
    else:
        endpos = np.flatnonzero(ends)
        first = np.searchsorted(endpos, char_end - lengths)
        nnum = np.diff(np.append(first, len(endpos)))
        starts = np.empty_like(endpos)
        starts[0] = 0
        starts[1:] = endpos[:-1] + 1
        nchars = endpos - starts + 1
        if nchars.max() > 12:
            return slow()
        x = (c[starts] & 0x1F).astype(np.int64)
        for j in range(1, int(nchars.max())):  # 5 more bits from each further character of a number
            longer = np.flatnonzero(nchars > j)
            x[longer] += (c[starts[longer] + j] & 0x1F).astype(np.int64) << (5 * j)
        negative = (c[endpos] & 0x10) != 0
        if negative.any():
            x[negative] -= np.int64(1) << (5 * nchars[negative])
    total = x[first].astype(np.int64)  # position 0 of a mask: a run of its own...
    bad = total < 0
    x[first] = 0  # ...and not part of the even chain
    # From position 3 on, a run is stored relative to the run two before it, so positions 1, 3, 5... and
    # 2, 4, 6... of a mask are two prefix-sum chains. The positions of one parity of each mask form one
    # contiguous block of the global stride-2 view x[p::2], and these blocks tile the view in mask order:
    # one cumsum per view and two reduceats give every mask's run total and smallest run.
    for p in (0, 1):
        chain = x[p::2]
        lo = (first + (p - first) % 2) // 2  # the mask's block in this view: [lo, hi)
        hi = np.maximum((first + nnum - 1 - p) // 2 + 1, lo)
        has = hi > lo
        if not has.any():
            continue
        lo, hi = lo[has], hi[has]
        cs = np.cumsum(chain, dtype=np.int64)
        base = cs[lo] - chain[lo]  # the view's sum before the block
        total[has] += np.add.reduceat(cs, lo) - (hi - lo) * base  # the block's runs are cs - base
        bad[has] |= np.minimum.reduceat(cs, lo) < base  # a negative run
    bad = np.flatnonzero(bad | (total != pixels))
    return int(bad[0]) if bad.size else None


def normalize(segmentation: Any, height: int, width: int, *, check_runs: bool = True) -> RLE | None:
    """Turn any YouTube-VIS per-frame segmentation (RLE, polygons or null) into compressed RLE.

    The run lengths are checked (``check``) unless ``check_runs`` is False, for callers that check many
    masks at once with ``check_many``.
    """
    if segmentation is None:
        return None
    if isinstance(segmentation, list):
        return from_polygons(segmentation, height, width)
    if not isinstance(segmentation, dict):
        raise ValueError(f"a segmentation is RLE, polygons or null, not {type(segmentation).__name__}")
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if type(size) is list and len(size) == 2 and type(size[0]) is int and type(size[1]) is int and type(counts) is str:
        # the common case, already compressed (fast path: results files hold ~10^5 masks)
        if check_runs:
            check(segmentation)
        return {"size": [size[0], size[1]], "counts": counts}
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in size
    ):
        raise ValueError(f"RLE 'size' is {size!r}, not [height, width]")
    counts = segmentation.get("counts")
    if isinstance(counts, list) and not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        raise ValueError("uncompressed RLE 'counts' must be a list of integers")
    if not isinstance(counts, (str, bytes, list)):
        raise ValueError(f"RLE 'counts' is {type(counts).__name__}, not a string or a list")
    if check_runs:
        check(segmentation)
    coco = to_coco(segmentation)
    return {"size": [int(coco["size"][0]), int(coco["size"][1])], "counts": coco["counts"].decode("ascii")}
