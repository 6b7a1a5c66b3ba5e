"""Residual motion: a weights-free per-frame cue for stage 1.

For frame t, dense optical flow (OpenCV's DIS) is computed towards t+1 and towards t-1 at a working size of
``work_size`` pixels on the long side. The camera's motion is removed by fitting one homography per flow
(RANSAC on the flow sampled at the patch centres): what is left is the motion of whatever does not move with
the background. Each pixel's *saliency* is the smaller of its forward and backward residual magnitudes, which
suppresses the two places where one-sided flow is wrong: the background a moving object is about to cover and
the background it has just uncovered.

Frames arrive as a stream (``MotionStream``), batch by batch with the frame after each batch, so a video is
never loaded whole. The first and last frame of a video use their one available neighbour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from uvis.errors import UserError

if TYPE_CHECKING:
    import torch

FLOW_PRESETS = ("ultrafast", "fast", "medium")


def require_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise UserError("the motion features need OpenCV", fix="pip install opencv-python-headless") from None
    return cv2


@dataclass(frozen=True)
class MotionConfig:
    """How residual motion is measured (everything that changes it)."""

    work_size: int = 854  # long side, in pixels, at which flow is computed (never upscaled; 1280x720 -> 854x480)
    patch: int = 16  # pixels per node of the patch grid, at a long side of work_size (see ``scaled``)
    flow_preset: str = "medium"  # OpenCV DIS preset
    ransac_threshold: float = 2.0  # pixels (at work_size): flow within this of the homography is background
    scale_to_frame: bool = True  # smaller frames get proportionally smaller patches and RANSAC threshold
    min_patch: int = 8  # the smallest scaled patch (4-px patches let the flow errors of a frame edge form "objects")

    def __post_init__(self) -> None:
        if self.flow_preset not in FLOW_PRESETS:
            raise UserError(f"unknown flow preset '{self.flow_preset}'", fix=f"use one of {', '.join(FLOW_PRESETS)}")
        if self.work_size < 4 * self.patch or self.patch < 2 or self.min_patch < 2:
            raise UserError(f"motion work size {self.work_size} with patch {self.patch} leaves no grid",
                            fix="use work_size >= 4 x patch and patch >= 2")
        if not self.ransac_threshold > 0:
            raise UserError(f"ransac threshold {self.ransac_threshold}", fix="use a positive number of pixels")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def scale(self, long_side: int) -> float:
        """How much smaller than ``work_size`` a frame with this long side (after the resize) is: 1 or less."""
        return min(1.0, long_side / self.work_size) if self.scale_to_frame else 1.0

    def scaled(self, long_side: int) -> tuple[int, float]:
        """(patch, RANSAC threshold) for a working-size frame of this long side: ``patch`` and
        ``ransac_threshold`` at ``work_size`` (every frame of 854 px or more: DAVIS 480p, 720p), in proportion
        below it, the patch never under ``min_patch`` (a 128-px frame: 8-px patches, a 16x12 grid, not 8x6)."""
        s = self.scale(long_side)
        if s == 1.0:
            return self.patch, self.ransac_threshold
        return max(min(self.min_patch, self.patch), round(self.patch * s)), self.ransac_threshold * s


@dataclass
class FrameMotion:
    """Residual motion of one frame, at the working size ``(h, w)`` and on its patch grid ``(gh, gw)``."""

    saliency: np.ndarray  # [h, w] float32: min of forward/backward residual magnitude, in working pixels
    vectors: np.ndarray  # [gh, gw, 4] float32: forward residual and negated backward residual per patch
    patch_saliency: np.ndarray  # [gh, gw] float32: min of the patch-mean forward/backward residual magnitudes
    frame: np.ndarray  # [h, w, 3] uint8: the frame at the working size (for a colour refinement)
    inlier_fraction: float  # of the camera model, averaged over the flows used (1: everything moves as one)
    back_flow: np.ndarray | None = None  # [h, w, 2] float32 flow towards the previous frame (None for the first)

    @property
    def size(self) -> tuple[int, int]:
        return self.saliency.shape[:2]


def working_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the long side ``long_side`` (never upscaled), aspect kept."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def pool(x: np.ndarray, p: int) -> np.ndarray:
    """Mean over non-overlapping p x p patches of [H, W, ...] (the ragged edge is cut off)."""
    gh, gw = x.shape[0] // p, x.shape[1] // p
    return x[:gh * p, :gw * p].reshape(gh, p, gw, p, *x.shape[2:]).mean(axis=(1, 3))


def camera_residual(flow: np.ndarray, patch: int, threshold: float) -> tuple[np.ndarray, float]:
    """Flow minus the flow of the best homography (RANSAC on the patch centres): [H, W, 2] -> [H, W, 2].

    Returns the residual and the inlier fraction; with too few points or a degenerate fit, the residual is the
    flow minus its median (a camera that only translates).
    """
    cv2 = require_cv2()
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[patch // 2:h:patch, patch // 2:w:patch]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    hom, inliers = (None, None)
    if len(src) >= 8:
        hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=500, confidence=0.995)
    if hom is None or not np.all(np.isfinite(hom)):
        return flow - np.median(flow.reshape(-1, 2), axis=0), 0.0
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    pts = np.stack([gx, gy], -1).reshape(1, -1, 2)
    moved = cv2.perspectiveTransform(pts, hom).reshape(h, w, 2)
    residual = np.stack([gx, gy], -1) + flow - moved
    return residual.astype(np.float32), float(inliers.mean())


class FlowEstimator:
    """Dense optical flow between two greyscale frames (OpenCV DIS)."""

    def __init__(self, preset: str = "medium"):
        cv2 = require_cv2()
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self._dis = cv2.DISOpticalFlow_create(code)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """[H, W] uint8, [H, W] uint8 -> [H, W, 2] float32 flow from a to b (pixels)."""
        return self._dis.calc(a, b, None)


def frame_motion(frame: np.ndarray, grey: np.ndarray, prev: np.ndarray | None, nxt: np.ndarray | None,
                 flow: FlowEstimator, config: MotionConfig) -> FrameMotion:
    """Residual motion of one working-size frame from its neighbours' greyscale frames (either may be None)."""
    if prev is None and nxt is None:
        raise ValueError("a frame needs at least one neighbour for motion")
    patch, threshold = config.scaled(max(grey.shape[:2]))
    residuals, inliers = [], []
    back_flow = None
    for other, sign in ((nxt, 1.0), (prev, -1.0)):
        if other is not None:
            raw = flow(grey, other)
            r, f = camera_residual(raw, patch, threshold)
            residuals.append(sign * r)
            inliers.append(f)
            if sign < 0:
                back_flow = raw
    if len(residuals) == 1:
        residuals = residuals * 2
    fwd, bwd = residuals
    saliency = np.minimum(np.linalg.norm(fwd, axis=-1), np.linalg.norm(bwd, axis=-1))
    vectors = pool(np.concatenate([fwd, bwd], -1), patch)
    patch_saliency = np.minimum(np.linalg.norm(vectors[..., :2], axis=-1), np.linalg.norm(vectors[..., 2:], axis=-1))
    return FrameMotion(saliency=saliency.astype(np.float32), vectors=vectors.astype(np.float32),
                       patch_saliency=patch_saliency.astype(np.float32), frame=frame,
                       inlier_fraction=float(np.mean(inliers)), back_flow=back_flow)


def patch_features(motion: FrameMotion, grid: tuple[int, int] | None = None) -> np.ndarray:
    """[n, 5] per-patch motion features: forward and negated backward residual and saliency, divided by the
    frame's 95th-percentile patch saliency (so they do not depend on how fast things move).

    ``grid`` (gh, gw): the features resampled onto another patch grid of the same frame (DINO's square grid)."""
    scale = max(float(np.percentile(motion.patch_saliency, 95)), 0.5)
    feats = np.concatenate([motion.vectors, motion.patch_saliency[..., None]], -1).astype(np.float32)
    if grid is not None and grid != feats.shape[:2]:
        cv2 = require_cv2()
        shrink = grid[0] < feats.shape[0] and grid[1] < feats.shape[1]
        feats = cv2.resize(feats, (grid[1], grid[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return feats.reshape(-1, 5) / scale


def motion_affinity(feats: np.ndarray, sigma: float, eps: float) -> torch.Tensor:
    """[n, 5] patch motion features -> [n, n] Gaussian affinity of their distances (+ ``eps``)."""
    import torch

    f = torch.from_numpy(feats.astype(np.float64))
    d2 = torch.cdist(f, f).square()
    return (torch.exp(-d2 / sigma**2) + eps).float()


def still_motion(frame: np.ndarray, patch: int) -> FrameMotion:
    """A frame with no neighbour (a one-frame video): no motion anywhere."""
    h, w = frame.shape[:2]
    return FrameMotion(np.zeros((h, w), np.float32), np.zeros((h // patch, w // patch, 4), np.float32),
                       np.zeros((h // patch, w // patch), np.float32), frame, 1.0)


class MotionStream:
    """Residual motion of a video's frames, fed batch by batch in order.

    Each call takes a batch and the frame that follows it (None at the video's end); the frame before the
    batch is remembered from the previous call, so results do not depend on how the video is batched.
    ``reset`` starts a new video.
    """

    def __init__(self, config: MotionConfig = MotionConfig()):
        self.config = config
        self._flow = FlowEstimator(config.flow_preset)
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (colour, grey) at the working size

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cv2 = require_cv2()
        h, w = working_size(frame.shape[0], frame.shape[1], self.config.work_size)
        small = frame if (h, w) == frame.shape[:2] else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(small)
        return small, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def __call__(self, frames: np.ndarray, next_frame: np.ndarray | None) -> list[FrameMotion]:
        """[B, H, W, 3] uint8 frames (+ the frame after them) -> the residual motion of each."""
        batch = [self._prepare(f) for f in frames]
        seq = [self._prev, *batch, self._prepare(next_frame) if next_frame is not None else None]
        out = []
        for i in range(1, len(batch) + 1):
            prev, cur, nxt = seq[i - 1], seq[i], seq[i + 1]
            if prev is None and nxt is None:
                out.append(still_motion(cur[0], self.config.scaled(max(cur[0].shape[:2]))[0]))
            else:
                out.append(frame_motion(cur[0], cur[1], prev[1] if prev else None, nxt[1] if nxt else None,
                                        self._flow, self.config))
        self._prev = batch[-1] if batch else self._prev
        return out
