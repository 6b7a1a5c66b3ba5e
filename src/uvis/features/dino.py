"""Stage 1's DINO features (Caron et al. 2021): the per-patch keys and tokens MaskCut needs, the frame
preprocessing CutLER's MaskCut uses, and an estimate of the forward pass's time on a CPU.

The ViTs themselves, their checkpoints and their position-embedding rule are in the backbone registry
(``uvis.features.backbones``); the device is chosen by ``uvis.features.device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uvis.features.backbones import VITS, DinoArch, create_backbone, vit_spec
from uvis.features.device import autocast_dtype, choose_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Features:
    """Per-patch outputs of the last block, row-major over the ``grid`` = (h, w) patch grid."""

    keys: torch.Tensor  # [B, h*w, D] float32: last block's attention keys, heads concatenated
    tokens: torch.Tensor  # [B, h*w, D] float32: final (normed) patch tokens
    grid: tuple[int, int]


class DinoFeatures:
    """A DINO ViT that returns last-block attention keys and patch tokens for a batch of images."""

    def __init__(self, name: str, weights: str | Path | None = None, device: str | torch.device | None = None,
                 *, model: nn.Module | None = None, amp: bool = True, download: bool = True, param: str = "dino_weights"):
        self.arch = vit_spec(name)[0]
        self.device = choose_device(device)
        if model is None:
            model = create_backbone(name, True if weights is None else weights, download=download, param=param)
        self.model = model.to(self.device).eval()
        self.amp_dtype = autocast_dtype(self.device) if amp else None
        self._qkv: torch.Tensor | None = None
        self.model.blocks[-1].attn.qkv.register_forward_hook(self._keep_qkv)

    @property
    def patch_size(self) -> int:
        return self.arch.patch_size

    @property
    def embed_dim(self) -> int:
        return self.arch.embed_dim

    def _keep_qkv(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._qkv = output

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> Features:
        """``images``: [B, 3, H, W] normalised (see ``preprocess``); H, W are cut down to patch multiples."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected [B, 3, H, W] images, got {tuple(images.shape)}")
        p = self.patch_size
        h, w = images.shape[2] // p, images.shape[3] // p
        if h == 0 or w == 0:
            raise ValueError(f"images of {tuple(images.shape[2:])} pixels are smaller than one {p}-pixel patch")
        x = images[:, :, : h * p, : w * p].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            tokens = self.model.forward_features(x)
        qkv, self._qkv = self._qkv, None
        assert qkv is not None
        d = self.embed_dim
        prefix = tokens.shape[1] - h * w  # the CLS token (timm puts prefix tokens first)
        keys = qkv[:, prefix:, d : 2 * d]  # qkv is laid out [q heads | k heads | v heads]
        return Features(keys=keys.float(), tokens=tokens[:, prefix:].float(), grid=(h, w))


def resize_frames(frames: np.ndarray | torch.Tensor, size: tuple[int, int] | int, *,
                  device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 frames [B, H, W, 3] (or one [H, W, 3]) -> uint8 [B, 3, h, w] at ``size`` on ``device``.

    The resize is PIL's Lanczos, pixel for pixel, as CutLER's MaskCut does it (``Image.resize(..., LANCZOS)``),
    computed in integer arithmetic on ``device`` (``uvis.data.resample``), so a GPU does the whole batch.
    """
    from uvis.data.resample import pil_resize

    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # torch cannot wrap a read-only array (decoded frames often are)
    t = torch.as_tensor(frames)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3 or t.dtype != torch.uint8:
        raise ValueError(f"expected [B, H, W, 3] uint8 frames, got {tuple(t.shape)} {t.dtype}")
    if device is not None:
        t = t.to(device, non_blocking=True)
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return pil_resize(t.permute(0, 3, 1, 2), size, "lanczos")


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, h, w] -> float [B, 3, h, w] in ImageNet units, as torchvision's ToTensor + Normalize."""
    x = images.float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def vit_flops(arch: DinoArch, resolution: int) -> float:
    """Multiply-adds x 2 of one ViT forward pass on a ``resolution`` x ``resolution`` frame (the matmuls: qkv,
    projection and MLP, 24 N D^2 per block, and attention, 4 N^2 D)."""
    n = (resolution // arch.patch_size) ** 2 + 1
    return arch.depth * (24.0 * n * arch.embed_dim ** 2 + 4.0 * n * n * arch.embed_dim)


def matmul_rate(tokens: int, dim: int, runs: int = 2) -> float:
    """Float32 matmul throughput (flop/s) of this CPU, with torch's threads, on the shape of a ViT's MLP layer
    (``tokens`` x ``dim`` times ``dim`` x 4 ``dim``): large models use the cores better than small ones."""
    import time

    a, b = torch.randn(tokens, dim), torch.randn(dim, 4 * dim)
    torch.mm(a, b)  # warm-up
    start = time.perf_counter()
    for _ in range(runs):
        torch.mm(a, b)
    return 2.0 * tokens * dim * 4 * dim * runs / max(time.perf_counter() - start, 1e-9)


# The ViT runs at about this fraction of the matmul rate of its own MLP shape (attention softmax, layer norms,
# GELU, memory traffic); measured for ViT-S/16 and ViT-B/8 at 480 px (benchmarks/RESULTS.md).
CPU_VIT_EFFICIENCY = 0.6


def cpu_seconds_per_frame(backbone: str, resolution: int, rate: float | None = None) -> float:
    """An estimate of the DINO forward pass of one frame on this CPU (MaskCut's cuts and CLIP come on top);
    ``rate``: the matmul rate, measured when not given (well under a second)."""
    arch = VITS[backbone]
    if rate is None:
        rate = matmul_rate((resolution // arch.patch_size) ** 2 + 1, arch.embed_dim)
    return vit_flops(arch, resolution) / (rate * CPU_VIT_EFFICIENCY)


def cpu_speed_note(backbone: str, resolution: int, frames: int | None, *, rate: float | None = None,
                   long_seconds: float = 600.0) -> str:
    """What a user starting a MaskCut job on the CPU should know: the estimated time per frame (and for
    ``frames``), and, when that is long (over ``long_seconds``), the faster backbone to try. ``rate``: a fixed
    matmul rate (tests); by default each backbone's is measured."""
    from uvis.data.progress import format_duration

    if backbone not in VITS:
        return ""
    each = cpu_seconds_per_frame(backbone, resolution, rate)
    total = each * frames if frames else None
    text = (f"on the CPU, {backbone} at {resolution} px takes about {format_duration(each)} per frame for DINO alone "
            f"(estimate)" + (f"; {frames} frames: about {format_duration(total)}" if total is not None else ""))
    if (total or each) < long_seconds:
        return text
    faster = min((n for n in VITS if n != "tiny"), key=lambda n: vit_flops(VITS[n], resolution))
    if faster != backbone:
        ratio = each / cpu_seconds_per_frame(faster, resolution, rate)  # same rate when given: a plain flop ratio
        text += (f". --backbone {faster} is about {ratio:.0f}x faster (coarser masks); a GPU (--device cuda) "
                 "much more")
    else:
        text += ". Use a GPU (--device cuda), fewer frames, or a lower --resolution"
    return text


def note_cpu_speed(device: torch.device, backbone: str, resolution: int, frames: int | None) -> None:
    """On the CPU, print ``cpu_speed_note`` to stderr (called once the backbone is loaded, so that an error before
    stays the command's only line)."""
    import sys

    if device.type == "cpu" and (note := cpu_speed_note(backbone, resolution, frames)):
        print(f"note: {note}", file=sys.stderr, flush=True)


def preprocess(frames: np.ndarray | torch.Tensor, size: tuple[int, int] | int, *,
               device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 frames [B, H, W, 3] (or one [H, W, 3]) -> normalised float [B, 3, h, w] at ``size`` on ``device``:
    ``normalise(resize_frames(...))``, i.e. the tensor CutLER's MaskCut gives DINO for the same frame."""
    return normalise(resize_frames(frames, size, device=device))
