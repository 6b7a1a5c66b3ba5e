"""MotionCut: class-agnostic object masks from residual motion alone (``--features motion``, no weights).

Per frame, with the residual motion of ``uvis.features.motion`` (camera motion removed):

1. **Graph.** One node per patch of the working-size frame; each node's feature is its forward and backward
   residual vectors and its saliency (the smaller residual magnitude), divided by the frame's 95th-percentile
   patch saliency so the graph does not depend on how fast things move. Affinity is a Gaussian kernel of the
   feature distance (``sigma``), plus ``eps``. MaskCut's binarised cosine graph suits DINO keys, not motion:
   on motion features it joins everything that moves a little.
2. **Cut.** The second generalised eigenvector, by MaskCut's own solver (``maskcut.second_eigenvector``),
   split at its mean.
3. **Orientation.** The side with the larger mean saliency is the object, unless it covers more than half of
   the frame's border patches (a camera model fitted to a frame-filling object makes the background "move";
   the border belongs to the background).
4. **Test.** The object must move: its mean saliency at least ``min_motion`` working pixels and at least
   ``min_contrast`` times that of the rest. Otherwise the frame has no (more) moving object, and no mask is
   made: static shots and a camera that only pans or zooms give none.
5. **Pixels.** Inside the cut region grown by ``grow`` patches, the pixels whose saliency exceeds
   ``pixel_threshold`` x the frame's 99.5th-percentile saliency (and ``min_motion``). This follows the flow's
   own boundaries instead of the patch grid. The evidence compared with the threshold is the saliency over that
   percentile plus ``temporal`` (0.2) where the previous frame's mask lands, moved by the backward flow (the
   object keeps parts whose flow fades for a frame); past frames only, so it streams. Holes are filled. ``refine="grabcut"`` adds OpenCV's GrabCut colour model on top
   (measured worse on DAVIS: ``benchmarks/motion_davis.py``).
6. **More objects.** Up to ``num_masks`` cuts: the found patches are painted out of the graph (eps edges
   only, as MaskCut does) and the next cut looks for another moving region; masks are disjoint.

Score: ``(1 - Ncut/2) x (1 - 1/contrast)``: near 1 for a region that is both well separated in the graph and
moving far more than its surroundings, near 0 for a weak or arbitrary split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.errors import UserError
from uvis.features.motion import FrameMotion, MotionConfig, MotionStream, motion_affinity, patch_features, require_cv2
from uvis.pseudo.maskcut import FrameMask, ncut_score, second_eigenvector

REFINEMENTS = ("none", "grabcut")


@dataclass(frozen=True)
class MotionCutConfig:
    """Settings of the motion cut (defaults chosen on the 10 DAVIS-2016 sequences, ``benchmarks/motion_davis.py``)."""

    motion: MotionConfig = field(default_factory=MotionConfig)
    num_masks: int = 1  # cuts per frame
    sigma: float = 0.5  # Gaussian kernel width on the normalised motion features
    eps: float = 1e-5  # affinity floor (and the weight of painted-out patches' edges)
    min_contrast: float = 1.5  # object saliency / rest saliency below this: no moving object
    min_motion: float = 0.5  # working-size pixels per frame: slower residual motion is noise
    pixel_threshold: float = 0.4  # x the frame's 99.5th-percentile saliency
    grow: int = 12  # patches the cut region is grown by before the pixel threshold
    min_area_frac: float = 0.001  # connected pieces smaller than this fraction of the frame are dropped
    border_rule: bool = True  # the side holding most of the border is the background
    refine: str = "none"  # "none" or "grabcut"
    fill_holes: bool = True  # fill the holes of each mask (textureless interiors the flow leaves out)
    temporal: float = 0.2  # evidence added where the previous frame's mask lands (warped by the flow)
    smooth: float = 0.0  # share of the previous frame's evidence (warped by the flow) in this frame's (running mean)
    appearance: float = 0.2  # weight of the video's colour model (2 P(object | colour) - 1) in the evidence
    appearance_bins: int = 16  # per RGB channel
    appearance_decay: float = 0.9  # of the running colour histograms, per frame that updates them
    appearance_min_score: float = 0.3  # only masks scoring at least this teach the colour model

    def __post_init__(self) -> None:
        if self.refine not in REFINEMENTS:
            raise UserError(f"unknown refinement '{self.refine}'", fix=f"use one of {', '.join(REFINEMENTS)}")
        if self.num_masks < 1:
            raise UserError(f"num_masks {self.num_masks}", fix="use num_masks=1 or more", param="num_masks")
        for name in ("sigma", "min_contrast", "pixel_threshold"):
            if not getattr(self, name) > 0:
                raise UserError(f"motion cut {name} {getattr(self, name)}", fix=f"use a positive {name}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MotionMask:
    """One mask at the working size."""

    mask: np.ndarray  # [h, w] bool
    score: float
    contrast: float


def _border(grid: tuple[int, int]) -> np.ndarray:
    b = np.zeros(grid, bool)
    b[0] = b[-1] = b[:, 0] = b[:, -1] = True
    return b.ravel()


def _pieces(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """``mask`` without its connected pieces smaller than ``min_pixels``."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def grabcut(frame: np.ndarray, mask: np.ndarray, iterations: int = 3) -> np.ndarray:
    """GrabCut of ``frame`` (RGB uint8) started from ``mask``, inside the mask's box grown by 25%."""
    cv2 = require_cv2()
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    my, mx = (ys.max() - ys.min()) // 4 + 4, (xs.max() - xs.min()) // 4 + 4
    y0, y1, x0, x1 = max(0, ys.min() - my), min(h, ys.max() + my + 1), max(0, xs.min() - mx), min(w, xs.max() + mx + 1)
    labels = np.where(mask[y0:y1, x0:x1], cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    models = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(np.ascontiguousarray(frame[y0:y1, x0:x1, ::-1]), labels, None, *models, iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return out


class VideoState:
    """What MotionCut carries from frame to frame of one video (past frames only): the last frame's masks
    and the running colour histograms of object and background."""

    def __init__(self, config: MotionCutConfig):
        self.config = config
        self.prev: np.ndarray | None = None  # [h, w] bool union of the last frame's masks
        self.prev_evidence: np.ndarray | None = None  # [h, w] float32 the last frame's smoothed motion evidence
        n = config.appearance_bins ** 3
        self.fg_hist = np.zeros(n, np.float64)
        self.bg_hist = np.zeros(n, np.float64)

    def colour_codes(self, frame: np.ndarray) -> np.ndarray:
        b = self.config.appearance_bins
        q = (frame.astype(np.int32) * b) // 256
        return (q[..., 0] * b + q[..., 1]) * b + q[..., 2]

    @staticmethod
    def warp(image: np.ndarray | None, motion: FrameMotion) -> np.ndarray | None:
        """A [h, w] map of the last frame moved onto this frame by the backward flow (None without one)."""
        if image is None or motion.back_flow is None or image.shape != motion.size:
            return None
        cv2 = require_cv2()
        h, w = motion.size
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        mx = gx + motion.back_flow[..., 0]
        my = gy + motion.back_flow[..., 1]
        return cv2.remap(image.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderValue=0.0)

    def warped_prev(self, motion: FrameMotion) -> np.ndarray | None:
        """The last frame's masks moved onto this frame ([h, w] float32 in [0, 1])."""
        return self.warp(self.prev, motion)

    def object_probability(self, codes: np.ndarray) -> np.ndarray | None:
        """P(object | colour) per pixel from the running histograms (None until both have been seen)."""
        if self.fg_hist.sum() == 0 or self.bg_hist.sum() == 0:
            return None
        n = self.fg_hist.size
        f = self.fg_hist / self.fg_hist.sum() + 1.0 / (n * 100)
        b = self.bg_hist / self.bg_hist.sum() + 1.0 / (n * 100)
        return (f / (f + b))[codes].astype(np.float32)

    def update(self, motion: FrameMotion, codes: np.ndarray, masks: list[MotionMask]) -> None:
        cv2 = require_cv2()
        union = np.zeros(motion.size, bool)
        for m in masks:
            union |= m.mask
        self.prev = union
        confident = [m for m in masks if m.score >= self.config.appearance_min_score]
        if not confident or self.config.appearance == 0:
            return
        fg = np.zeros(motion.size, bool)
        for m in confident:
            fg |= m.mask
        near = cv2.dilate(union.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0  # the uncertain rim
        n = self.fg_hist.size
        d = self.config.appearance_decay
        self.fg_hist = d * self.fg_hist + np.bincount(codes[fg], minlength=n) / max(fg.sum(), 1)
        self.bg_hist = d * self.bg_hist + np.bincount(codes[~near], minlength=n) / max((~near).sum(), 1)


def motion_cut(motion: FrameMotion, config: MotionCutConfig = MotionCutConfig(),
               state: VideoState | None = None) -> list[MotionMask]:
    """The moving objects of one frame, as disjoint working-size masks (none when nothing moves).

    With a ``state`` (MotionCut's, per video) the previous frame's masks and the video's colour model add to
    the pixel evidence, and the state learns from this frame's masks."""
    cv2 = require_cv2()
    sal = motion.patch_saliency
    grid = sal.shape
    n = sal.size
    if n < 4:
        return []
    s = sal.ravel().astype(np.float64)
    border = _border(grid)
    affinity = motion_affinity(patch_features(motion), config.sigma, config.eps)
    pixel = motion.saliency
    top = max(float(np.percentile(pixel, 99.5)), 1e-6)
    pixel_floor = max(config.pixel_threshold * top, config.min_motion)
    evidence = pixel / top  # above pixel_floor / top: object
    codes = None
    if state is not None and config.smooth:
        before = state.warp(state.prev_evidence, motion)
        if before is not None:
            evidence = (1 - config.smooth) * evidence + config.smooth * before
        state.prev_evidence = evidence.astype(np.float32)
    if state is not None:
        warped = state.warped_prev(motion) if config.temporal else None
        if warped is not None:
            evidence = evidence + config.temporal * warped
        if config.appearance:
            codes = state.colour_codes(motion.frame)
            prob = state.object_probability(codes)
            if prob is not None:
                evidence = evidence + config.appearance * (2 * prob - 1)
    h, w = motion.size
    p = motion.saliency.shape[0] // grid[0]
    # ``grow`` counts patches of config.motion.patch pixels at the working size: the same share of the frame at
    # any size and patch
    grow = round(config.grow * config.motion.patch * config.motion.scale(max(h, w)) / p)
    painted = np.zeros(n, bool)
    taken = np.zeros((h, w), bool)
    out: list[MotionMask] = []
    for _ in range(config.num_masks):
        free = ~painted
        if free.sum() < 4:
            break
        a = affinity
        if painted.any():
            cut_out = torch.from_numpy(painted)
            a = affinity.masked_fill(cut_out[:, None] | cut_out[None, :], config.eps)
        vec = second_eigenvector(a[None])[0].numpy()
        part = vec > vec[free].mean()
        part &= free
        rest = free & ~part
        if not part.any() or not rest.any():
            break
        fg = part if s[part].mean() >= s[rest].mean() else rest
        if config.border_rule and (fg & border).sum() > 0.5 * (free & border).sum():
            fg = free & ~fg
        bg = free & ~fg
        if not fg.any() or not bg.any():
            break
        fg_motion, bg_motion = s[fg].mean(), s[bg].mean()
        contrast = fg_motion / max(bg_motion, 1e-6)
        if fg_motion < config.min_motion or contrast < config.min_contrast:
            break
        painted |= fg
        region = fg.reshape(grid).astype(np.uint8)
        if grow:  # on the patch grid: cheap, and the same as growing the upsampled region
            region = cv2.dilate(region, np.ones((2 * grow + 1,) * 2, np.uint8))
        gate = cv2.resize(region, (grid[1] * p, grid[0] * p), interpolation=cv2.INTER_NEAREST)
        gate = np.pad(gate, ((0, h - gate.shape[0]), (0, w - gate.shape[1])), mode="edge") > 0
        mask = gate & (evidence > pixel_floor / top) & ~taken
        mask = _pieces(mask, max(1, int(config.min_area_frac * h * w)))
        if config.fill_holes and mask.any():
            from scipy import ndimage

            mask = ndimage.binary_fill_holes(mask) & ~taken
        if config.refine == "grabcut" and mask.any():
            mask = grabcut(motion.frame, mask) & ~taken
        if not mask.any():
            continue
        taken |= mask
        score = float(ncut_score(a[None], torch.from_numpy(fg)[None])[0]) * (1 - 1 / contrast)
        out.append(MotionMask(mask=mask, score=round(float(score), 6), contrast=float(contrast)))
    if state is not None:
        state.update(motion, codes if codes is not None else state.colour_codes(motion.frame), out)
    return out


def to_frame_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size mask at the frame's (height, width), nearest-neighbour."""
    cv2 = require_cv2()
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


class MotionCut:
    """Frames -> per-frame masks of what moves against the camera's motion (a temporal frame labeller).

    Call it on a video's batches in order with the frame that follows each batch (``uvis.data.video.
    with_next_frame``), after ``start_video()``. ``frames_without_motion`` counts, per video, the frames where
    nothing moved.
    """

    temporal = True

    def __init__(self, config: MotionCutConfig = MotionCutConfig()):
        require_cv2()
        self.config = config
        self.stream = MotionStream(config.motion)
        self.frames_without_motion = 0
        self.state = VideoState(config)

    def start_video(self) -> None:
        self.stream.reset()
        self.frames_without_motion = 0
        self.state = VideoState(config=self.config)

    def masks(self, frames: np.ndarray, next_frame: np.ndarray | None) -> list[list[tuple[np.ndarray, float]]]:
        """Per frame, its (frame-size bool mask, score) pairs."""
        size = tuple(frames.shape[1:3])
        out = []
        for motion in self.stream(frames, next_frame):
            found = motion_cut(motion, self.config, self.state)
            self.frames_without_motion += not found
            out.append([(to_frame_size(m.mask, size), m.score) for m in found])
        return out

    def __call__(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[list[FrameMask]]:
        per_frame = self.masks(frames, next_frame)
        flat = [m for masks in per_frame for m, _ in masks]
        rles = iter(mask_utils.encode_many(np.stack(flat)) if flat else [])
        return [[FrameMask(next(rles), score) for _, score in masks] for masks in per_frame]
