"""PIL's ``Image.resize`` for 8-bit images, restated in torch: the same pixels, batched, on any device.

CutLER's MaskCut resizes frames with ``PIL.Image.resize(..., LANCZOS)`` and masks with PIL's default
(bicubic). PIL resamples separably, one pass per side that changes size, each pass a convolution with
per-output fixed-point integer weights (22 fraction bits, rounded half away from zero), accumulated from
``1 << 21`` and clipped to 0..255 after each pass; a pass is skipped when its side keeps its size. This module
computes those weights exactly as Pillow's ``Resample.c`` does (``precompute_coeffs`` and
``normalize_coeffs_8bpc``, in double precision, in the same order) and applies them as integer gathers, so
the result is bit-identical to PIL on CPU and GPU alike (integer arithmetic has no rounding to differ).

Pass order: Pillow < 13 always runs the horizontal pass first; Pillow 13 runs the vertical one first when the
height loses more than twice as many pixels as the width (``ImagingResampleInner``). The 8-bit rounding
between passes makes the two orders differ by a grey level here and there, so ``pillow`` picks the rule
("13", the version uvis pins, or "12" for the older one). Of MaskCut's own resizes only masks going to
frames that are wider but less tall than the square (e.g. 480 -> 640x360) take the vertical-first path.

``block`` describes an input that is a nearest-neighbour enlargement of a smaller grid (each cell repeated
``block`` times, as MaskCut's patch masks are): the weights falling on one cell are summed, which gives the
same integers as resampling the enlarged image, without building it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point fraction bits for 8-bit images
PILLOW_ORDERS = ("13", "12")  # pass-order rules: Pillow >= 13, Pillow < 13


def _bicubic(x: float) -> float:
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _bilinear(x: float) -> float:
    if x < 0.0:
        x = -x
    if x < 1.0:
        return 1.0 - x
    return 0.0


FILTERS: dict[str, tuple[float, Callable[[float], float]]] = {
    "bilinear": (1.0, _bilinear),
    "bicubic": (2.0, _bicubic),
    "lanczos": (3.0, _lanczos),
}


@lru_cache(maxsize=64)
def pil_weights(in_size: int, out_size: int, filter: str, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's taps for resizing one side from ``in_size`` to ``out_size`` pixels: (index [out, K] int64,
    weight [out, K] int32), weights in fixed point with ``PRECISION_BITS`` fraction bits; unused taps have
    weight 0. With ``block`` > 1 the index is into the ``in_size // block`` cells of a block-constant input.
    """
    if filter not in FILTERS:
        raise ValueError(f"unknown filter '{filter}' (one of {', '.join(FILTERS)})")
    if in_size < 1 or out_size < 1 or in_size % block:
        raise ValueError(f"cannot resample {in_size} pixels (block {block}) to {out_size}")
    support, fn = FILTERS[filter]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    ss = 1.0 / filterscale
    dense = np.zeros((out_size, in_size // block), dtype=np.int64)
    one = float(1 << PRECISION_BITS)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C casts truncate toward zero, as int() does
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ws = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in ws:
            ww += w
        for x, w in enumerate(ws):
            if ww != 0.0:
                w /= ww
            fixed = int(-0.5 + w * one) if w < 0 else int(0.5 + w * one)
            dense[xx, (x + xmin) // block] += fixed
    width = max(int((dense != 0).sum(1).max()), 1)
    index = np.zeros((out_size, width), dtype=np.int64)
    weight = np.zeros((out_size, width), dtype=np.int32)
    for xx in range(out_size):
        cols = np.flatnonzero(dense[xx])
        index[xx, : len(cols)] = cols
        weight[xx, : len(cols)] = dense[xx, cols]
    index.flags.writeable = weight.flags.writeable = False  # cached: shared by every caller
    return index, weight


def _pass(x: torch.Tensor, dim: int, out_size: int, filter: str, block: int) -> torch.Tensor:
    """One PIL pass along ``dim`` of an int32 tensor of 0..255 values; returns int32 0..255."""
    index, weight = pil_weights(x.shape[dim] * block, out_size, filter, block)
    idx = torch.tensor(index, device=x.device)  # a copy: the cached arrays stay read-only
    wt = torch.tensor(weight, device=x.device)
    # the resampled side first: each tap then gathers whole contiguous slabs (a gather along the last,
    # strided side is ~10x slower on the CPU)
    src = x.movedim(dim, 0).contiguous()
    shape = (out_size,) + (1,) * (x.ndim - 1)
    acc = torch.full((out_size, *src.shape[1:]), 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    for k in range(idx.shape[1]):
        acc.addcmul_(src.index_select(0, idx[:, k]), wt[:, k].view(shape))
    out = torch.div(acc, 1 << PRECISION_BITS, rounding_mode="floor").clamp_(0, 255)
    return out.movedim(0, dim)


def vertical_first(in_size: tuple[int, int], out_size: tuple[int, int], pillow: str = "13") -> bool:
    """Whether PIL runs the vertical pass before the horizontal one for (H, W) -> (h, w) (see module doc)."""
    if pillow not in PILLOW_ORDERS:
        raise ValueError(f"unknown Pillow pass order '{pillow}' (one of {', '.join(PILLOW_ORDERS)})")
    shrink_h, shrink_w = in_size[0] - out_size[0], in_size[1] - out_size[1]
    return pillow == "13" and shrink_h > 0 and shrink_h > 2 * shrink_w


ENGINES = ("auto", "pil", "torch")
_PIL_FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS"}


def installed_pillow_order() -> str:
    """The pass-order rule of the Pillow that is installed ("13" or "12")."""
    import PIL

    return "13" if int(PIL.__version__.split(".")[0]) >= 13 else "12"


def pil_resize(images: torch.Tensor, size: tuple[int, int], filter: str = "bicubic", *,
               block: tuple[int, int] = (1, 1), pillow: str = "13", engine: str = "auto") -> torch.Tensor:
    """Resize the last two dims (H, W) of a uint8 tensor to ``size`` = (h, w) exactly as PIL's ``Image.resize``
    does for 8-bit images (any leading dims, e.g. [B, C, H, W]; each channel alike, as PIL treats RGB).

    ``block`` = (bh, bw): the input stands for its nearest-neighbour enlargement by bh x bw (H * bh rows,
    W * bw columns), which is what gets resized. ``pillow``: whose pass order ("13" or "12", see the module doc).
    ``engine``: "torch" (the integer restatement, on the input's device), "pil" (PIL itself, one plane at a
    time, on the CPU; needs the installed Pillow to follow ``pillow``'s order), "auto" (PIL for CPU tensors when
    it follows that order, as it is the faster there; torch otherwise). All give the same pixels.
    Returns uint8 on the input's device.
    """
    if images.ndim < 2:
        raise ValueError(f"expected [..., H, W] images, got {tuple(images.shape)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}' (one of {', '.join(ENGINES)})")
    if engine == "auto":
        engine = "pil" if images.device.type == "cpu" and installed_pillow_order() == pillow else "torch"
    if engine == "pil":
        return _pil_engine(images, size, filter, block, pillow)
    h, w = size
    x = images.to(torch.int32)
    in_h, in_w = x.shape[-2] * block[0], x.shape[-1] * block[1]
    rows, cols = x.ndim - 2, x.ndim - 1
    steps = [(cols, in_w, w, block[1]), (rows, in_h, h, block[0])]
    if vertical_first((in_h, in_w), (h, w), pillow):
        steps.reverse()
    for dim, n_in, n_out, cell in steps:
        if n_in != n_out:
            x = _pass(x, dim, n_out, filter, cell)
        elif cell > 1:
            x = x.repeat_interleave(cell, dim=dim)
    return x.to(torch.uint8)


def _pil_engine(images: torch.Tensor, size: tuple[int, int], filter: str, block: tuple[int, int],
                pillow: str) -> torch.Tensor:
    from PIL import Image

    if installed_pillow_order() != pillow:
        raise ValueError(f"the installed Pillow does not follow pass order '{pillow}'; use engine='torch'")
    if filter not in _PIL_FILTERS:
        raise ValueError(f"unknown filter '{filter}' (one of {', '.join(FILTERS)})")
    resample = getattr(Image.Resampling, _PIL_FILTERS[filter])
    h, w = size
    planes = images.detach().cpu().to(torch.uint8).reshape(-1, *images.shape[-2:]).numpy()
    out = np.empty((planes.shape[0], h, w), dtype=np.uint8)
    for i, plane in enumerate(planes):
        if block != (1, 1):
            plane = plane.repeat(block[0], axis=0).repeat(block[1], axis=1)
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(plane)).resize((w, h), resample))
    return torch.from_numpy(out).view(*images.shape[:-2], h, w).to(images.device)
