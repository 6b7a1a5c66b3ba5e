"""Naming masks with CLIP: crop each mask with some context, treat its background, embed, classify.

Per mask the crop is a square around the mask's box: its side is the box's longer side plus a
margin of ``context`` times that side on every side (square, so CLIP's square input never distorts
or cuts the object). Parts of the square outside the frame are filled with CLIP's mean colour.
The crop is resized to CLIP's input size; pixels outside the (resized) mask are then

- ``"blur"``: replaced by a Gaussian-blurred copy of the crop (the object stays sharp, the scene
  stays recognisable: context helps, clutter does not dominate);
- ``"grey"``: replaced by CLIP's mean colour (zero after normalisation: only the object's shape and
  appearance count);
- ``"keep"``: left as they are (plain box crop).

Crops are normalised with CLIP's mean/std and encoded in batches (bf16 autocast on CUDA). Class
logits are ``logit_scale * cosine(image, class)``; a softmax over the vocabulary gives probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from uvis.errors import UserError
from uvis.pseudo.clip_model import ClipModel

BACKGROUNDS = ("blur", "grey", "keep")


@dataclass
class NamingConfig:
    """How masks are cropped and shown to CLIP."""

    context: float = 0.1  # margin around the box on every side, as a fraction of the box's longer side
    background: str = "blur"  # "blur" | "grey" | "keep": what happens to pixels outside the mask
    blur_sigma: float = 5.0  # Gaussian sigma for "blur", in CLIP-input pixels (224 for ViT-B-32)
    batch_size: int = 128  # crops per image-encoder pass
    templates: str = "imagenet80"  # prompt set: "imagenet80" (CLIP paper), "short7", or "single"
    text_cache_dir: str | None = None  # folder for cached class embeddings (None: memory only)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise UserError(f"unknown background mode '{self.background}'", fix=f"use one of {', '.join(BACKGROUNDS)}")
        if not 0 <= self.context < math.inf:  # NaN too
            raise UserError(f"context must be >= 0, got {self.context}", fix="pass e.g. context=0.1", param="context")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}", fix="pass a positive batch size")


def crop_box(mask: np.ndarray, context: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop around ``mask``'s box; may extend past the frame."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(ys) == 0:
        h, w = mask.shape
        return 0, 0, max(h, w)  # empty mask: the whole frame (its crop is then all background)
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    longer = max(x1 - x0, y1 - y0)
    side = max(1, math.ceil(longer * (1 + 2 * context)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return math.floor(cx - side / 2), math.floor(cy - side / 2), side


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of Bx3xSxS images (reflect padding); two 1-D passes keep it cheap for big sigma."""
    size = images.shape[-1]
    radius = min(math.ceil(3 * sigma), size - 1)
    if radius < 1 or sigma <= 0:
        return images
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    c = images.shape[1]
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                   groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                    groups=c)


def crop_masks(
    frame: torch.Tensor, masks: list[np.ndarray], cfg: NamingConfig, size: int, mean: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops (Bx3xSxS, values in [0, 1], background treated) and their masks (BxSxS bool) of one frame.

    ``frame`` is a 3xHxW float tensor in [0, 1] on the device the crops should be made on. All crops of a
    frame come from one ``roi_align`` call (bilinear, with ceil(side/S)^2 samples averaged per output
    pixel, so shrinking is anti-aliased). It samples the frame minus the mean colour, whose zero outside
    the frame becomes the mean colour once the mean is added back.
    """
    fill = torch.tensor(mean, dtype=frame.dtype, device=frame.device).view(3, 1, 1)
    if not masks:
        return torch.zeros(0, 3, size, size, device=frame.device), torch.zeros(0, size, size, dtype=torch.bool)
    boxes = []
    for k, m in enumerate(masks):
        x0, y0, side = crop_box(m, cfg.context)
        boxes.append([k, x0, y0, x0 + side, y0 + side])
    rois = torch.tensor(boxes, dtype=frame.dtype, device=frame.device)
    whole = rois.clone()
    whole[:, 0] = 0  # every crop samples the one frame
    images = roi_align((frame - fill)[None], whole, output_size=size, sampling_ratio=-1, aligned=True) + fill
    stack = torch.from_numpy(np.stack(masks)).to(frame.device)[:, None].to(frame.dtype)
    inside = roi_align(stack, rois, output_size=size, sampling_ratio=-1, aligned=True) >= 0.5
    images = images.clamp_(0, 1)
    if cfg.background == "grey":
        images = torch.where(inside, images, fill)
    elif cfg.background == "blur":
        images = torch.where(inside, images, gaussian_blur(images, cfg.blur_sigma))
    return images, inside[:, 0]


def frame_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float in [0, 1] on ``device``."""
    frame = np.ascontiguousarray(frame)
    if not frame.flags.writeable:  # frames decoded by PIL are read-only; torch wants writable memory
        frame = frame.copy()
    t = torch.from_numpy(frame).to(device, non_blocking=True)
    return t.permute(2, 0, 1).float().div_(255.0)


def _normalise(images: torch.Tensor, clip: ClipModel) -> torch.Tensor:
    mean = torch.tensor(clip.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(clip.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def embed_masks(
    clip: ClipModel, frames: Iterable[tuple[np.ndarray, list[np.ndarray]]], cfg: NamingConfig
) -> Iterator[torch.Tensor]:
    """Unit image embeddings of every mask, in input order, yielded in chunks (one per encoder batch).

    ``frames`` yields (HxWx3 uint8 frame, [HxW bool masks]) pairs; crops from several frames share a batch.
    """
    pending: list[torch.Tensor] = []
    count = 0
    for frame, masks in frames:
        if not masks:
            continue
        images, _ = crop_masks(frame_tensor(frame, clip.device), masks, cfg, clip.image_size, clip.mean)
        pending.append(_normalise(images, clip))
        count += len(images)
        while count >= cfg.batch_size:
            batch = torch.cat(pending)
            yield clip.encode_images(batch[:cfg.batch_size])
            rest = batch[cfg.batch_size:]
            pending, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield clip.encode_images(torch.cat(pending))


def classify(embeddings: torch.Tensor, class_embeddings: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """NxV class probabilities: softmax of ``logit_scale`` x cosine similarity."""
    logits = logit_scale * embeddings.float() @ class_embeddings.float().T
    return logits.softmax(dim=-1)
