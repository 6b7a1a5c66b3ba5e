"""Self-supervised DINO backbones (Caron et al. 2021) and the per-patch features MaskCut needs.

The networks are timm's ``VisionTransformer`` / torchvision's ResNet-50; the weights are the official DINO
checkpoints, whose key names already match timm's (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``). Full training checkpoints
(``teacher`` / ``student`` with ``module.`` / ``backbone.`` prefixes) are unwrapped too.

Any input size works: the 224-pixel position embedding is resampled to the input's patch grid exactly as
DINO's ``interpolate_pos_encoding`` does it (bicubic with scale factor (grid + 0.1) / 14 or / 28). timm's own
resampling interpolates to the target size instead, which moves the sample points: on a 60x60 grid (480 px,
patch 8) that changed position embeddings by ~2% of their magnitude, so DINO's rule is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uvis.errors import UserError
from uvis.features.weights import WeightsSpec, resolve

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BASE = "https://dl.fbaipublicfiles.com/dino"


def _spec(folder: str) -> WeightsSpec:
    return WeightsSpec(filename=f"{folder}.pth", url=f"{_BASE}/{folder}/{folder}.pth")


@dataclass(frozen=True)
class DinoArch:
    """A DINO ViT: its shape and where its published weights live (``spec`` None: random init only)."""

    name: str
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    spec: WeightsSpec | None
    img_size: int = 224  # the position-embedding grid the checkpoint was trained at


VITS: dict[str, DinoArch] = {
    "dino_vits16": DinoArch("dino_vits16", 16, 384, 12, 6, _spec("dino_deitsmall16_pretrain")),
    "dino_vits8": DinoArch("dino_vits8", 8, 384, 12, 6, _spec("dino_deitsmall8_pretrain")),
    "dino_vitb16": DinoArch("dino_vitb16", 16, 768, 12, 12, _spec("dino_vitbase16_pretrain")),
    "dino_vitb8": DinoArch("dino_vitb8", 8, 768, 12, 12, _spec("dino_vitbase8_pretrain")),
    # A few-kilobyte ViT for tests: same code path, weights saved by the test in the official layout.
    "tiny": DinoArch("tiny", 8, 48, 2, 3, WeightsSpec("dino_tiny_test.pth", "file:///nonexistent/dino_tiny_test.pth"), 32),
}
RESNET50_SPEC = _spec("dino_resnet50_pretrain")
BACKBONES = [*VITS, "dino_resnet50"]


def dino_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[1, 1 + N, D] class + patch position embedding -> [1, 1 + h*w, D], as DINO's ``interpolate_pos_encoding``."""
    n = pos_embed.shape[1] - 1
    h, w = grid
    side = int(math.sqrt(n))
    if n == h * w and h == w:
        return pos_embed
    patch = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch.float(), scale_factor=((h + 0.1) / side, (w + 0.1) / side), mode="bicubic")
    if tuple(patch.shape[-2:]) != (h, w):  # DINO asserts this; the +0.1 makes it hold
        raise ValueError(f"position embedding resampled to {tuple(patch.shape[-2:])}, expected {grid}")
    patch = patch.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, h * w, -1)
    return torch.cat([pos_embed[:, :1], patch], dim=1)


def build_vit(arch: DinoArch) -> nn.Module:
    """An uninitialised-weights timm ViT with DINO's layout (qkv bias, LayerNorm eps 1e-6, no head)."""
    from timm.models.vision_transformer import VisionTransformer

    class DinoViT(VisionTransformer):
        def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, h, w, D] (dynamic size, NHWC)
            b, h, w, d = x.shape
            x = torch.cat([self.cls_token.expand(b, -1, -1), x.reshape(b, h * w, d)], dim=1)
            return self.pos_drop(x + dino_pos_embed(self.pos_embed, (h, w)))

    return DinoViT(
        img_size=arch.img_size,
        patch_size=arch.patch_size,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        dynamic_img_size=True,
    )


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or a DINO training checkpoint (teacher preferred)."""
    if isinstance(obj, dict):
        for key in ("teacher", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("not a state dict")
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith("head."):  # DINO projection head: not part of the backbone
            continue
        out[k] = v
    return out


def read_state_dict(path: Path, fix: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return _unwrap(obj)
    except Exception as e:
        raise UserError(f"cannot read weights ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})",
                        path=path, fix=fix) from None


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path, fix: str,
                ignore: Sequence[str] = ()) -> None:
    """Load every parameter; any missing, unexpected or mis-shaped key is a user error naming it."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not any(k.endswith(s) for s in ignore)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}")
        if shapes:
            problems.append(f"shape mismatch {shapes[:2]}")
        raise UserError(f"weights do not fit this backbone: {'; '.join(problems)}", path=path, fix=fix)
    model.load_state_dict(state, strict=not ignore)


def load_vit(name: str, weights: str | Path | None = None, *, download: bool = True) -> nn.Module:
    """Build a DINO ViT by name and load its official weights (see ``uvis.features.weights.resolve``)."""
    arch = _arch(name)
    model = build_vit(arch)
    assert arch.spec is not None
    path = resolve(arch.spec, weights, download=download)
    fix = f"pass the official {arch.spec.filename} ({arch.spec.url}) with --weights, or pick the matching --backbone"
    load_strict(model, read_state_dict(path, fix), path, fix)
    return model.eval()


def load_resnet50(weights: str | Path | None = None, *, download: bool = True) -> nn.Module:
    """DINO ResNet-50 (torchvision layout, classifier replaced by identity), for initialising later stages."""
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    model.fc = nn.Identity()
    path = resolve(RESNET50_SPEC, weights, download=download)
    fix = f"pass the official {RESNET50_SPEC.filename} ({RESNET50_SPEC.url}) with --weights"
    state = {k: v for k, v in read_state_dict(path, fix).items() if not k.startswith("fc.")}
    load_strict(model, state, path, fix, ignore=("num_batches_tracked",))
    return model.eval()


def _arch(name: str) -> DinoArch:
    if name not in VITS:
        raise UserError(f"unknown backbone '{name}'", fix=f"use one of {', '.join(n for n in VITS if n != 'tiny')}")
    return VITS[name]


def official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A timm ViT's weights under the official DINO key names (identical names; kept as a function so a
    future timm rename shows up in one place and the tests)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class Features:
    """Per-patch outputs of the last block, row-major over the ``grid`` = (h, w) patch grid."""

    keys: torch.Tensor  # [B, h*w, D] float32: last block's attention keys, heads concatenated
    tokens: torch.Tensor  # [B, h*w, D] float32: final (normed) patch tokens
    grid: tuple[int, int]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The one check of a ``--device`` value for every command: ``None``/``auto`` (CUDA when present), ``cpu``,
    ``cuda``, ``cuda:N``; anything else, or a GPU that is not there, is a one-line error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown --device '{device}'", fix="use --device auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} but no CUDA device is visible", fix="use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"no GPU '{device}': {torch.cuda.device_count()} visible",
                        fix=f"use --device cuda:N with N < {torch.cuda.device_count()}, or cuda")
    return dev


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 on older GPUs, none on CPU (fp32 there is faster and exact)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class DinoFeatures:
    """A DINO ViT that returns last-block attention keys and patch tokens for a batch of images."""

    def __init__(self, name: str, weights: str | Path | None = None, device: str | torch.device | None = None,
                 *, model: nn.Module | None = None, amp: bool = True, download: bool = True):
        self.arch = _arch(name)
        self.device = pick_device(device)
        self.model = (model if model is not None else load_vit(name, weights, download=download)).to(self.device).eval()
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


def preprocess(frames: np.ndarray | torch.Tensor, size: tuple[int, int] | int, *,
               device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 frames [B, H, W, 3] (or one [H, W, 3]) -> normalised float [B, 3, h, w] at ``size`` on ``device``.

    Resizing runs on ``device`` (bicubic with antialiasing, close to the PIL Lanczos resize MaskCut uses) so
    a GPU does it for the whole batch.
    """
    t = torch.as_tensor(frames)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected [B, H, W, 3] uint8 frames, got {tuple(t.shape)}")
    if device is not None:
        t = t.to(device, non_blocking=True)
    x = t.permute(0, 3, 1, 2).float().div_(255.0)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[2:]) != size:
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
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
