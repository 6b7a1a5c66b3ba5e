"""MaskCut (Wang et al., CutLER 2023): up to N object masks per frame from repeated normalised cuts on DINO keys.

Semantics follow the reference ``maskcut/maskcut.py`` (with TokenCut's ``detect_box`` and ``metric.IoU``):

1. the frame is resized to a fixed square (480) with PIL's Lanczos, pixel for pixel (``uvis.features.dino.
   resize_frames``), and the last DINO block's keys give one node per patch;
2. affinity = cosine similarity of L2-normalised keys, binarised: 1 where > tau (0.15), else eps (1e-5);
3. the second-smallest generalised eigenvector of (D - A) x = lambda D x, computed here as
   D^-1/2 times the eigenvector of the symmetric I - D^-1/2 A D^-1/2 (fp32; Lanczos on the CPU, batched
   ``torch.linalg.eigh`` on CUDA; ``solver="subspace"`` is the approximate batched alternative);
4. bipartition = eigenvector > its mean; the seed is the patch with the largest |eigenvector|;
   the foreground side is flipped when it covers >= 3 of the 4 corners, or when it misses the seed;
5. only the 4-connected component of the foreground holding the seed is kept (scipy ``ndimage.label``'s
   default structure in the reference; a flood fill on the patch grid here, so it runs on the GPU);
6. from the second mask on, a mask is dropped (all zero) when its IoU with the previous mask is > 0.5 or it
   covers <= 1% of the patches; the first mask is never filtered, as in the reference;
7. the kept foreground patches get zero features for the next cut (they join the graph with eps edges only);
8. each mask loses the patches of the masks before it, so the N masks are disjoint (the reference subtracts the
   earlier masks at 480 x 480 after a nearest-neighbour enlargement, which is the same thing);
9. to frame size as the reference: nearest to the square, PIL's bicubic resize to the frame, pixels above half
   the resized mask's maximum (``upsample_masks``); each mask on its own, so a few border pixels can belong to
   two masks. With ``crf``: the CRF refines each disjoint 480 x 480 mask on the Lanczos square DINO saw (the
   reference's ``I_new``), fills holes, drops a mask whose refinement has IoU < 0.5 with it, and keeps the
   refined masks as they are (not made disjoint again, as in the reference), then step 9.

Identical to CutLER's script on the same keys: the 480 x 480 input, every step above, and the frame-size
masks. Where they can differ:
- eigenvector sign. LAPACK returns either sign, and in the reference the corner rule only has an effect when the
  eigenvector happens to be positive at the seed: with the other sign the bipartition misses the seed, and
  whether or not the corner rule flips it, the seed rule lands on the seed's side. We fix the sign positive at
  the seed, so the corner rule always applies as written. A cut differs from the reference's exactly when LAPACK
  returned the negative sign and the seed's side covers >= 3 corners: there uvis takes the other side, and the
  later cuts of that frame follow from a different painting (``benchmarks/maskcut_vs_cutler.py`` counts them);
- floating point: the keys (timm's ViT vs DINO's; bf16 autocast on GPU unless ``--fp32``) and the eigensolver
  (fp32 Lanczos vs scipy's float64 dense solve) differ in the last bits, which can only matter in near-ties (an
  edge at exactly tau, a patch at exactly the mean);
- scores (below), and a mask whose resize has no zero pixel: the reference then sets its "background" to the
  non-zero minimum and pycocotools encodes a garbled mask; here it stays the pixels above half the maximum;
- PIL's pass order: Pillow >= 13 resizes vertically first when the height loses more than twice as many pixels
  as the width (``uvis.data.resample``). uvis follows Pillow 13 (the pinned version), so against a reference
  run under an older Pillow, masks of frames wider but less tall than the square (e.g. 640x360) can differ by
  a few border pixels.

Score (CutLER's pseudo-labels all carry 1): ``1 - Ncut/2`` of the kept mask on that cut's binary graph, where
Ncut = cut/vol(S) + cut/vol(rest); 1 for a perfectly separated object, near 0 for an arbitrary split.

Everything is batched over frames on one device: no per-frame host round trips until the RLE encoding.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from uvis.data import masks as mask_utils
from uvis.data.masks import RLE
from uvis.data.resample import pil_resize
from uvis.errors import UserError
from uvis.features.motion import MotionConfig, MotionStream, motion_affinity, patch_features

SOLVERS = ("eigh", "subspace")
LANCZOS_MIN_NODES = 64  # below this a dense eigensolve is as fast as Lanczos


@dataclass(frozen=True)
class MaskCutConfig:
    """MaskCut settings; defaults are the ones CutLER's README runs MaskCut with (ViT-B/8 keys, tau 0.15,
    480 px, N 3; the script's own argparse default for tau is 0.2)."""

    resolution: int = 480  # frames are resized to resolution x resolution before DINO
    tau: float = 0.15  # cosine-similarity threshold that binarises the patch graph
    eps: float = 1e-5  # weight of the edges at or below tau
    num_masks: int = 3  # cuts per frame (N)
    min_area_frac: float = 0.01  # masks 2..N covering <= this fraction of patches are dropped
    max_iou_prev: float = 0.5  # masks 2..N with IoU above this with the previous mask are dropped
    crf: bool = False  # refine each mask with a dense CRF (needs the optional ``uvis[crf]`` extra)
    crf_min_iou: float = 0.5  # with --crf: drop a mask whose CRF result has IoU below this with the mask
    solver: str = "eigh"  # "eigh" (exact: Lanczos on CPU, dense eigh on CUDA) or "subspace" (approximate)
    subspace_iters: int = 100  # iterations of the subspace solver
    fill_check_every: int = 8  # flood-fill steps between convergence checks (each check is one host sync)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise UserError(f"unknown eigen-solver '{self.solver}'", fix=f"use one of {', '.join(SOLVERS)}")
        if self.num_masks < 1 or self.resolution < 16:
            raise UserError("num_masks must be >= 1 and resolution >= 16", fix="check num_masks= and resolution=")
        if not -1.0 < self.tau < 1.0:  # a cosine threshold outside (-1, 1), or NaN, leaves no graph to cut
            raise UserError(f"tau {self.tau} is not a cosine similarity in (-1, 1)", fix="pass e.g. tau=0.15", param="tau")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PatchMasks:
    """MaskCut output on the patch grid."""

    masks: torch.Tensor  # [B, N, h, w] bool, disjoint; all-False where a cut was dropped
    scores: torch.Tensor  # [B, N] float, 0 for dropped masks


# ---------------------------------------------------------------------------------------------- timing


@dataclass
class Timings:
    """Wall-clock seconds per stage; synchronises CUDA at each boundary only when enabled (benchmarks)."""

    enabled: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str, device: torch.device | None = None) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        yield
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- graph


def cosine_similarity(keys: torch.Tensor) -> torch.Tensor:
    """[B, n, D] features -> [B, n, n] cosine similarities (0 for all-zero features), in fp32."""
    f = F.normalize(keys.float(), p=2, dim=-1)
    return f @ f.transpose(1, 2)


def binarise(sim: torch.Tensor, tau: float, eps: float) -> torch.Tensor:
    """Affinity from similarities: 1 where > tau, else eps."""
    return torch.where(sim > tau, torch.ones((), device=sim.device), torch.full((), eps, device=sim.device))


def binary_affinity(keys: torch.Tensor, tau: float, eps: float) -> torch.Tensor:
    """[B, n, D] features -> [B, n, n] affinity: 1 where cosine > tau, else eps (zero features: eps rows)."""
    return binarise(cosine_similarity(keys), tau, eps)


def second_eigenvector(affinity: torch.Tensor, *, solver: str = "eigh", iters: int = 100) -> torch.Tensor:
    """Second-smallest generalised eigenvector of (D - A) x = lambda D x, batched: [B, n, n] -> [B, n].

    Normalised as scipy's ``eigh(D - A, D)`` does (x^T D x = 1); the sign is arbitrary.
    """
    a = affinity.float()
    d = a.sum(-1)
    d_isqrt = d.rsqrt()
    m = d_isqrt[:, :, None] * a * d_isqrt[:, None, :]  # D^-1/2 A D^-1/2, eigenvalues in [-1, 1]
    if solver == "eigh" and m.device.type == "cpu":
        y = torch.stack([torch.from_numpy(_lanczos_second(x.numpy())) for x in m])
    elif solver == "eigh":
        lap = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype) - m
        _, vecs = torch.linalg.eigh(lap)  # batched, ascending; index 0 is sqrt(d) (eigenvalue 0)
        y = vecs[..., 1]
    else:
        y = _subspace_second(m, d.sqrt(), iters)
    return d_isqrt * y


def _lanczos_second(m: np.ndarray) -> np.ndarray:
    """Second-largest eigenvector of one normalised affinity ``m`` [n, n] on the CPU, to working precision.

    Implicitly restarted Lanczos (ARPACK, through ``scipy.sparse.linalg.eigsh``, the routine the reference
    calls): only matrix-vector products, 5-15x faster than LAPACK's subset ``eigh`` at 3600 patches and the
    same vector. The start vector is fixed, so results are deterministic. Small graphs, and the rare graph
    where ARPACK does not converge, use the dense subset driver instead.
    """
    n = m.shape[0]
    if n > LANCZOS_MIN_NODES:
        v0 = np.random.default_rng(0).standard_normal(n).astype(m.dtype)
        try:
            vals, vecs = scipy.sparse.linalg.eigsh(m, k=2, which="LA", tol=0, v0=v0, maxiter=50)
            return vecs[:, int(np.argmin(vals))]  # the top one is sqrt(d), eigenvalue 1
        except scipy.sparse.linalg.ArpackError:
            pass
    lap = np.eye(n, dtype=m.dtype) - m
    return scipy.linalg.eigh(lap, subset_by_index=[1, 1], driver="evx")[1][:, 0]


def _orthonormal(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning ``x`` [B, n, k], by CholeskyQR2: two k x k Cholesky factorisations, all
    batched (a Householder QR of many tall-skinny matrices loops per matrix on CUDA)."""
    for _ in range(2):
        gram = x.transpose(1, 2) @ x
        jitter = 1e-6 * gram.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=1e-30)
        gram = gram + jitter[:, None, None] * torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
        chol, _ = torch.linalg.cholesky_ex(gram)
        x = torch.linalg.solve_triangular(chol, x.transpose(1, 2), upper=False).transpose(1, 2)
    return x


def _subspace_second(m: torch.Tensor, top: torch.Tensor, iters: int, k: int = 6) -> torch.Tensor:
    """Second-largest eigenvector of ``m`` by block power iteration with the known top vector deflated.

    The top eigenvector of D^-1/2 A D^-1/2 is sqrt(d); shifting by +I makes the spectrum non-negative, so
    power steps converge to the largest remaining eigenvalues; a Rayleigh-Ritz step picks the best vector.
    Only batched matmuls and k x k factorisations (no n x n eigh), which is what makes it fast on a GPU.
    """
    b, n, _ = m.shape
    u = F.normalize(top, dim=-1)[:, :, None]  # [B, n, 1]
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(n, k, generator=gen).to(m.device).expand(b, n, k).contiguous()
    shifted = m + torch.eye(n, device=m.device, dtype=m.dtype)
    for _ in range(iters):
        x = x - u @ (u.transpose(1, 2) @ x)
        x = _orthonormal(shifted @ x)
    x = _orthonormal(x - u @ (u.transpose(1, 2) @ x))
    small = x.transpose(1, 2) @ (m @ x)  # [B, k, k] Rayleigh quotient
    _, vecs = torch.linalg.eigh(small)
    return (x @ vecs[..., -1:]).squeeze(-1)


def orient(vec: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bipartition and seed per the reference rules: [B, n] eigenvectors -> (fg [B, n] bool, seed [B] long)."""
    h, w = grid
    peak = vec.abs().argmax(-1, keepdim=True)
    vec = vec * torch.where(vec.gather(-1, peak) < 0, -1.0, 1.0)  # positive at the seed (see module doc)
    part = vec > vec.mean(-1, keepdim=True)
    corners = part[:, [0, w - 1, (h - 1) * w, h * w - 1]].sum(-1)
    flip = corners >= 3
    fg = torch.where(flip[:, None], ~part, part)
    seed = torch.where(flip, (-vec).argmax(-1), vec.argmax(-1))
    return fg, seed


def _dilate4(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[:, 1:, :] |= x[:, :-1, :]
    out[:, :-1, :] |= x[:, 1:, :]
    out[:, :, 1:] |= x[:, :, :-1]
    out[:, :, :-1] |= x[:, :, 1:]
    return out


def seed_component(fg: torch.Tensor, seed: torch.Tensor, grid: tuple[int, int], check_every: int = 8) -> torch.Tensor:
    """The 4-connected component of ``fg`` ([B, n] bool) holding ``seed``, by flood fill on the grid."""
    b = fg.shape[0]
    h, w = grid
    region = fg.view(b, h, w)
    reach = torch.zeros_like(region)
    reach.view(b, -1)[torch.arange(b, device=fg.device), seed] = True
    reach &= region
    for _ in range(0, h * w, check_every):
        before = reach
        for _ in range(check_every):
            reach = _dilate4(reach) & region
        if torch.equal(before, reach):
            break
    return reach.view(b, -1)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of [B, n] bool masks; 0 when both are empty (the reference's NaN compares false too)."""
    inter = (a & b).sum(-1).float()
    union = (a | b).sum(-1).float()
    return inter / union.clamp(min=1)


def ncut_score(affinity: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Ncut(S)/2 for the [B, n] masks on their [B, n, n] graphs; 0 for empty or full masks."""
    m = mask.float()
    deg = affinity.sum(-1)
    vol_s = (deg * m).sum(-1)
    vol_r = (deg * (1 - m)).sum(-1)
    assoc = (m[:, None, :] @ affinity @ m[:, :, None]).view(-1)
    cut = vol_s - assoc
    ncut = cut / vol_s.clamp(min=1e-12) + cut / vol_r.clamp(min=1e-12)
    ok = (vol_s > 0) & (vol_r > 0) & mask.any(-1) & (~mask).any(-1)
    return torch.where(ok, (1 - ncut / 2).clamp(0, 1), torch.zeros_like(ncut))


@torch.no_grad()
def maskcut_patches(keys: torch.Tensor, grid: tuple[int, int], config: MaskCutConfig = MaskCutConfig(),
                    timings: Timings | None = None, motion: torch.Tensor | None = None,
                    motion_weight: float = 0.0) -> PatchMasks:
    """Run N cuts on each frame's patch graph; ``keys`` is [B, h*w, D] (any device, computed in fp32).

    ``motion`` ([B, h*w, h*w], ``uvis.features.motion.motion_affinity``) fuses a second graph: each cut is made
    on ``(1 - motion_weight) x`` the binarised DINO graph ``+ motion_weight x`` the motion graph (painted
    patches keep eps edges in both); with weight 0, or no motion, the cuts are MaskCut's exactly."""
    timings = timings or Timings()
    b, n, _ = keys.shape
    h, w = grid
    if n != h * w:
        raise ValueError(f"{n} patches do not fill a {h}x{w} grid")
    with timings("affinity", keys.device):
        # One similarity matrix for all N cuts: zeroing a patch's features (the reference's way of removing a
        # mask) only sets its row and column to cosine 0, so later graphs are masked copies, not new matmuls.
        sim = cosine_similarity(keys)
    painted = torch.zeros(b, n, dtype=torch.bool, device=keys.device)
    taken = torch.zeros_like(painted)
    prev: torch.Tensor | None = None
    out_masks, out_scores = [], []
    for i in range(config.num_masks):
        if prev is not None:
            painted |= prev
        with timings("affinity", keys.device):
            graph = sim if i == 0 else sim.masked_fill(painted[:, :, None] | painted[:, None, :], 0.0)
            a = binarise(graph, config.tau, config.eps)
            if motion is not None and motion_weight > 0:
                m = motion if i == 0 else motion.masked_fill(painted[:, :, None] | painted[:, None, :], config.eps)
                a = (1 - motion_weight) * a + motion_weight * m.to(a.device)
        with timings("eigensolve", keys.device):
            vec = second_eigenvector(a, solver=config.solver, iters=config.subspace_iters)
        with timings("postprocess", keys.device):
            fg, seed = orient(vec, grid)
            mask = seed_component(fg, seed, grid, config.fill_check_every)
            if i >= 1:
                assert prev is not None
                ratio = mask.sum(-1).float() / n
                drop = (mask_iou(prev, mask) > config.max_iou_prev) | (ratio <= config.min_area_frac)
                mask = mask & ~drop[:, None]
            prev = mask
            score = ncut_score(a, mask)
            out = mask & ~taken
            taken |= out
            out_masks.append(out)
            out_scores.append(torch.where(out.any(-1), score, torch.zeros_like(score)))
    return PatchMasks(masks=torch.stack(out_masks, 1).view(b, config.num_masks, h, w),
                      scores=torch.stack(out_scores, 1))


# ---------------------------------------------------------------------------------------------- to frames


def upsample_masks(masks: torch.Tensor, size: tuple[int, int], square: tuple[int, int] | None = None, *,
                   engine: str = "auto") -> torch.Tensor:
    """[B, N, h, w] bool masks -> [B, N, H, W] bool at ``size`` = (H, W), exactly as CutLER's script does it.

    The reference enlarges each patch mask to the ``square`` (nearest neighbour; ``None``: the masks are already
    at the square, as after the CRF), resizes the 0/255 image to the frame with PIL's default (bicubic) and keeps
    the pixels above half the resized mask's maximum. Here the same integers come from ``pil_resize`` with the
    nearest enlargement folded into its weights: batched, on the masks' device, no 480 x 480 image built. Each
    mask is resized on its own, as in the reference, so masks that were disjoint can share a few border pixels.
    ``engine``: ``pil_resize``'s (PIL itself on the CPU by default; the torch restatement elsewhere).
    """
    b, k, h, w = masks.shape
    block = (1, 1) if square is None else (square[0] // h, square[1] // w)
    if square is not None and (block[0] * h, block[1] * w) != tuple(square):
        raise ValueError(f"a {h}x{w} grid does not tile a {square[0]}x{square[1]} square")
    grey = pil_resize(masks.to(torch.uint8) * 255, size, "bicubic", block=block, engine=engine)
    # integers: value > max / 2 exactly; an empty mask (max 0) stays empty
    if grey.device.type == "cpu":  # numpy's reductions and compares run several times faster than torch's here
        g = grey.numpy()
        peak = g.reshape(b, k, -1).max(-1)[:, :, None, None]
        return torch.from_numpy(g > peak // 2)
    return grey > grey.amax(dim=(-2, -1), keepdim=True) // 2


@dataclass
class FrameMask:
    """One mask of one frame as a frame labeller returns it (MaskCut leaves the class empty)."""

    rle: RLE
    score: float
    category_id: int | None = None
    class_prob: float | None = None


def to_rles(masks: torch.Tensor, scores: torch.Tensor, *, on_device: bool | None = None) -> list[list[FrameMask]]:
    """[B, N, H, W] bool + [B, N] scores -> per frame, the non-empty masks as RLE.

    ``on_device`` (default: when the masks are on a GPU): run boundaries are found on the masks' device and only
    they are copied to the host (``mask_utils.encode_tensor``); otherwise the masks are copied once and encoded
    by pycocotools. Both give the same RLEs.
    """
    b, n = masks.shape[:2]
    keep = masks.flatten(2).any(-1)
    kept, s = keep.cpu().numpy(), scores.cpu().numpy()
    if masks.is_cuda if on_device is None else on_device:
        rles = mask_utils.encode_tensor(masks[keep])
    else:
        rles = mask_utils.encode_many(masks.cpu().numpy()[kept])
    ordered = iter(rles)  # the kept masks, frame by frame
    return [[FrameMask(next(ordered), float(s[i, j])) for j in range(n) if kept[i, j]] for i in range(b)]


def crf_available() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def require_crf() -> None:
    if not crf_available():
        raise UserError("crf=True needs the pydensecrf2 package", fix="pip install 'uvis[crf]' (or pydensecrf2), or drop crf=True",
                        param="crf")


def crf_refine(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dense-CRF refinement of one HxW mask on its HxWx3 uint8 image, as the reference's ``crf.densecrf`` (softmax
    of the 0/1 logits in float64; 10 iterations; Gaussian sxy 3, weight 7; bilateral sxy 50, srgb 5, weight 10),
    then its hole filling of the MAP foreground."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax
    from scipy import ndimage

    h, w = mask.shape
    fg = mask.astype(np.float64)
    logits = np.stack([1 - fg, fg])
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=3, compat=7)
    crf.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(image), compat=10)
    q = np.array(crf.inference(10)).reshape(2, h, w)
    return ndimage.binary_fill_holes(q.argmax(0) == 1)


def apply_crf(images: np.ndarray, masks: torch.Tensor, min_iou: float) -> torch.Tensor:
    """CRF on each [res, res] mask of [B, N, res, res] with its [B, res, res, 3] uint8 image (the Lanczos-resized
    frame DINO saw); a mask whose refinement has IoU < ``min_iou`` with it is dropped, as in the reference.

    The masks going in are disjoint; the refined ones are kept as the CRF returns them (the reference does not
    make them disjoint again), so neighbouring masks may overlap after it.
    """
    m = masks.cpu().numpy()
    out = np.zeros_like(m)
    for bi in range(m.shape[0]):
        for k in range(m.shape[1]):
            if not m[bi, k].any():
                continue
            refined = crf_refine(images[bi], m[bi, k])
            inter = np.logical_and(refined, m[bi, k]).sum()
            union = np.logical_or(refined, m[bi, k]).sum()
            if union and inter / union >= min_iou:
                out[bi, k] = refined
    return torch.from_numpy(out).to(masks.device)


# ---------------------------------------------------------------------------------------------- frames in, RLEs out


class MaskCut:
    """Frames -> per-frame pseudo-masks: DINO keys at ``resolution`` x ``resolution``, N cuts, masks at frame size."""

    temporal = False  # FusedMaskCut (dino+motion) also takes the frame after each batch

    def __init__(self, features: Any, config: MaskCutConfig = MaskCutConfig()):
        if config.crf:
            require_crf()
        if config.resolution % features.patch_size:
            raise UserError(f"resolution {config.resolution} is not a multiple of the patch size {features.patch_size}",
                            fix=f"use a resolution= divisible by {features.patch_size}", param="resolution")
        self.features = features
        self.config = config
        self.timings = Timings()

    @property
    def device(self) -> torch.device:
        return self.features.device

    def __call__(self, frames: np.ndarray) -> list[list[FrameMask]]:
        """``frames``: [B, H, W, 3] uint8 RGB of one size. Returns, per frame, its non-empty masks with scores."""
        return self.cut(frames)

    def motion_graphs(self, frames: np.ndarray, grid: tuple[int, int]) -> torch.Tensor | None:
        """[B, n, n] motion affinities on DINO's grid to fuse with the DINO graph (None: plain MaskCut)."""
        return None

    def cut(self, frames: np.ndarray, motion_weight: float = 0.0) -> list[list[FrameMask]]:
        from uvis.features.dino import normalise, resize_frames

        res = self.config.resolution
        t = self.timings
        size = (int(frames.shape[1]), int(frames.shape[2]))
        with t("features", self.device):
            square = resize_frames(frames, res, device=self.device)  # uint8, PIL's Lanczos
            feats = self.features(normalise(square))
        motion = self.motion_graphs(frames, feats.grid) if motion_weight > 0 else None
        patch = maskcut_patches(feats.keys, feats.grid, self.config, t, motion, motion_weight)
        with t("upsample", self.device):
            if self.config.crf:
                h, w = feats.grid
                big = patch.masks.repeat_interleave(res // h, dim=2).repeat_interleave(res // w, dim=3)
                refined = apply_crf(square.permute(0, 2, 3, 1).cpu().numpy(), big, self.config.crf_min_iou)
                up = upsample_masks(refined, size)
            else:
                up = upsample_masks(patch.masks, size, square=(res, res))
        with t("rle"):
            return to_rles(up, patch.scores)


class FusedMaskCut(MaskCut):
    """``--features dino+motion``: MaskCut on DINO's key graph fused with the residual-motion graph of each frame
    (``maskcut_patches``' ``motion``): ``motion_weight`` 0 is plain MaskCut, 1 cuts on motion alone.

    A temporal labeller, like MotionCut: after ``start_video()``, call it on a video's batches in order with the
    frame that follows each batch. The motion features (``uvis.features.motion.patch_features``) are resampled
    from the motion grid of the working-size frame onto DINO's square grid of the same frame.
    """

    temporal = True

    def __init__(self, features: Any, config: MaskCutConfig = MaskCutConfig(), *, motion: MotionConfig | None = None,
                 motion_weight: float = 0.5, sigma: float = 0.5):
        super().__init__(features, config)
        if not 0.0 <= motion_weight <= 1.0:
            raise UserError(f"motion weight {motion_weight}", fix="use motion_weight between 0 and 1",
                            param="motion_weight")
        self.motion_weight = motion_weight
        self.sigma = sigma
        self.stream = MotionStream(motion or MotionConfig())
        self._next: np.ndarray | None = None

    def start_video(self) -> None:
        self.stream.reset()

    def motion_graphs(self, frames: np.ndarray, grid: tuple[int, int]) -> torch.Tensor | None:
        per_frame = self.stream(frames, self._next)
        graphs = [motion_affinity(patch_features(m, grid), self.sigma, self.config.eps) for m in per_frame]
        return torch.stack(graphs)

    def __call__(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[list[FrameMask]]:
        self._next = next_frame
        return self.cut(frames, self.motion_weight)
