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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uvis.errors import UserError
from uvis.features.weights import Need, Validator, WeightsSpec, read_tensors, resolve, unreadable_error

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BASE = "https://dl.fbaipublicfiles.com/dino"
# timm's copies of the official files on the Hugging Face hub (the same tensors, as safetensors)
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")


def _spec(folder: str, title: str, timm_name: str | None = None) -> WeightsSpec:
    return WeightsSpec(filename=f"{folder}.pth", url=f"{_BASE}/{folder}/{folder}.pth", title=title,
                       hf_repo=f"timm/{timm_name}" if timm_name else None, hf_files=_TIMM_FILES if timm_name else ())


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
    timm_name: str | None = None  # timm's name of the same weights (``<timm_name>`` on the Hugging Face hub)
    hf_name: str | None = None  # the transformers-layout copy (``facebook/dino-*``)


def _vit(name: str, patch: int, dim: int, heads: int, folder: str, title: str, timm_name: str, hf_name: str) -> DinoArch:
    return DinoArch(name, patch, dim, 12, heads, _spec(folder, title, timm_name), timm_name=timm_name, hf_name=hf_name)


VITS: dict[str, DinoArch] = {
    "dino_vits16": _vit("dino_vits16", 16, 384, 6, "dino_deitsmall16_pretrain", "DINO ViT-S/16",
                        "vit_small_patch16_224.dino", "facebook/dino-vits16"),
    "dino_vits8": _vit("dino_vits8", 8, 384, 6, "dino_deitsmall8_pretrain", "DINO ViT-S/8",
                       "vit_small_patch8_224.dino", "facebook/dino-vits8"),
    "dino_vitb16": _vit("dino_vitb16", 16, 768, 12, "dino_vitbase16_pretrain", "DINO ViT-B/16",
                        "vit_base_patch16_224.dino", "facebook/dino-vitb16"),
    "dino_vitb8": _vit("dino_vitb8", 8, 768, 12, "dino_vitbase8_pretrain", "DINO ViT-B/8",
                       "vit_base_patch8_224.dino", "facebook/dino-vitb8"),
    # A few-kilobyte ViT for tests: same code path, weights saved by the test in the official layout.
    # Its Hugging Face names (never published) let tests lay out a fake Hugging Face cache.
    "tiny": DinoArch("tiny", 8, 48, 2, 3, WeightsSpec("dino_tiny_test.pth", "file:///nonexistent/dino_tiny_test.pth",
                                                      title="test-only tiny DINO",
                                                      hf_repo="timm/vit_tiny_test_patch8_32.dino", hf_files=_TIMM_FILES), 32,
                     timm_name="vit_tiny_test_patch8_32.dino", hf_name="uvis-tests/dino-tiny"),
}
RESNET50_SPEC = _spec("dino_resnet50_pretrain", "DINO ResNet-50")
BACKBONES = [*VITS, "dino_resnet50"]
REAL_VITS = [n for n in VITS if n != "tiny"]  # what help texts and errors list (``tiny`` is for tests)


def backbone_names() -> list[str]:
    """Every accepted ``--backbone`` spelling of a real DINO ViT: uvis's, timm's and the Hugging Face names."""
    out = list(REAL_VITS)
    for n in REAL_VITS:
        a = VITS[n]
        out += [str(a.timm_name), f"hf-hub:timm/{a.timm_name}", str(a.hf_name)]
    return out


def backbone(name: str) -> tuple[DinoArch, WeightsSpec]:
    """The architecture and the weights file of a ``--backbone`` name: ``dino_vitb8`` (the official file, also
    found in the Hugging Face cache under timm's copy), timm's ``vit_base_patch8_224.dino`` (also as
    ``timm/...`` or ``hf-hub:timm/...``: timm's safetensors file from the Hugging Face hub) or
    ``facebook/dino-vitb8`` (the transformers layout, converted on loading)."""
    if name in VITS:
        spec = VITS[name].spec
        assert spec is not None
        return VITS[name], spec
    bare = name.removeprefix("hf-hub:").removeprefix("timm/")
    for arch in VITS.values():
        if arch.timm_name is not None and bare == arch.timm_name:
            assert arch.spec is not None
            return arch, WeightsSpec(filename=_TIMM_FILES[0], url="", title=f"{arch.spec.title}, timm's copy",
                                     hf_repo=f"timm/{arch.timm_name}", hf_files=_TIMM_FILES)
        if arch.hf_name is not None and name.removeprefix("hf-hub:") == arch.hf_name:
            assert arch.spec is not None
            return arch, WeightsSpec(filename=_TIMM_FILES[0], url="", title=f"{arch.spec.title}, transformers layout",
                                     hf_repo=arch.hf_name, hf_files=_TIMM_FILES)
    raise UserError(f"unknown backbone '{name}'",
                    fix=f"use one of {', '.join(REAL_VITS)} (or timm's names such as {VITS['dino_vitb8'].timm_name}, "
                        f"or {VITS['dino_vitb8'].hf_name})")


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
    """Accept a bare state dict or a DINO training checkpoint (teacher preferred), in the official (timm) key
    layout or transformers' (``facebook/dino-*``, converted by ``from_transformers``)."""
    if isinstance(obj, dict):
        for key in ("teacher", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("not a state dict")
    if any(k.split(".", 1)[-1].startswith("embeddings.patch_embeddings.") or k.startswith("embeddings.") for k in obj):
        return from_transformers(obj)
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith("head."):  # DINO projection head: not part of the backbone
            continue
        out[k] = v
    return out


# transformers' ViTModel names -> timm's (per block: ``encoder.layer.N.`` -> ``blocks.N.``)
_HF_TOP = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
           "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
           "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
           "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
_HF_BLOCK = {"attention.output.dense": "attn.proj", "layernorm_before": "norm1", "layernorm_after": "norm2",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
_HF_QKV = ("attention.attention.query", "attention.attention.key", "attention.attention.value")


def from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``ViTModel`` state dict (``facebook/dino-*``) under timm's key names: query, key and value
    are stacked into ``qkv``; the pooler (not part of DINO) is dropped. Unknown keys are kept as they are, so
    the strict load names them."""
    state = {k.removeprefix("vit.").removeprefix("dino."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in state.items():
        if k.startswith("pooler.") or k == "embeddings.mask_token":
            continue
        if k in _HF_TOP:
            out[_HF_TOP[k]] = v
            continue
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", k)
        if m is None:
            out[k] = v
            continue
        block, module, kind = m.groups()
        if module in _HF_QKV:
            qkv.setdefault((block, kind), {})[module] = v
        elif module in _HF_BLOCK:
            out[f"blocks.{block}.{_HF_BLOCK[module]}.{kind}"] = v
        else:
            out[k] = v
    for (block, kind), parts in qkv.items():
        if len(parts) != 3:
            raise ValueError(f"transformers checkpoint: layer {block} lacks some of query/key/value")
        out[f"blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts[n] for n in _HF_QKV])
    return out


def read_state_dict(path: Path, param: str = "dino_weights", expected: str = "the official DINO file") -> dict[str, torch.Tensor]:
    """The backbone tensors of a DINO weights file (``.pth`` or safetensors); a file that does not load is a
    one-line error with the whole reason, saying to delete it or pass another path."""
    try:
        obj = read_tensors(path)
    except Exception as e:
        raise unreadable_error(path, e, param, expected) from None
    try:
        return _unwrap(obj)
    except ValueError as e:
        raise UserError(f"not a DINO checkpoint ({e})", path=path,
                        fix=f"pass {expected} as {param}=PATH", param=param) from None


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


def _vit_fix(spec: WeightsSpec, param: str) -> str:
    source = spec.url or f"the Hugging Face hub ({spec.hf_repo})"
    return f"pass the official {spec.filename} ({source}) as {param}=PATH, or pick the matching backbone"


def _vit_loaded(name: str, path: Path, param: str) -> nn.Module:
    arch, spec = backbone(name)
    model = build_vit(arch)
    load_strict(model, read_state_dict(path, param, spec.filename), path, _vit_fix(spec, param))
    return model


def vit_validator(name: str, param: str = "dino_weights") -> Validator:
    """Load a file into backbone ``name``'s architecture: every key and shape must fit (raises ``UserError``)."""
    backbone(name)  # an unknown name fails now, not when a file is checked

    def validate(path: Path) -> None:
        _vit_loaded(name, path, param)

    return validate


def vit_need(name: str, weights: str | Path | None = None, param: str = "dino_weights", use: str = "MaskCut") -> Need:
    """The weights file backbone ``name`` needs (for ``check_needs``)."""
    _, spec = backbone(name)
    return Need(spec, weights, param, vit_validator(name, param), use)


def _resnet50_loaded(path: Path, param: str) -> nn.Module:
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    model.fc = nn.Identity()
    fix = f"pass the official {RESNET50_SPEC.filename} ({RESNET50_SPEC.url}) as {param}=PATH"
    state = {k: v for k, v in read_state_dict(path, param, RESNET50_SPEC.filename).items() if not k.startswith("fc.")}
    load_strict(model, state, path, fix, ignore=("num_batches_tracked",))
    return model


def resnet50_validator(param: str = "backbone_weights") -> Validator:
    def validate(path: Path) -> None:
        _resnet50_loaded(path, param)

    return validate


def resnet50_need(weights: str | Path | None = None, param: str = "backbone_weights") -> Need:
    return Need(RESNET50_SPEC, weights, param, resnet50_validator(param), "the model's backbone initialisation")


def resolve_vit(name: str, weights: str | Path | None = None, *, download: bool = True, param: str = "dino_weights") -> Path:
    """The local weights file of backbone ``name`` (found, or downloaded and verified)."""
    need = vit_need(name, weights, param)
    return resolve(need.spec, weights, download=download, param=param, validate=need.validate)


def load_vit(name: str, weights: str | Path | None = None, *, download: bool = True, param: str = "dino_weights") -> nn.Module:
    """Build a DINO ViT by name and load its official weights (see ``uvis.features.weights.resolve``)."""
    path = resolve_vit(name, weights, download=download, param=param)
    model = _vit_loaded(name, path, param)
    model.weights_path = path  # type: ignore[attr-defined]  # which file: recorded by the steps that use it
    return model.eval()


def load_resnet50(weights: str | Path | None = None, *, download: bool = True,
                  param: str = "backbone_weights") -> nn.Module:
    """DINO ResNet-50 (torchvision layout, classifier replaced by identity), for initialising later stages."""
    path = resolve(RESNET50_SPEC, weights, download=download, param=param, validate=resnet50_validator(param))
    return _resnet50_loaded(path, param).eval()


def _arch(name: str) -> DinoArch:
    return backbone(name)[0]


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
        raise UserError(f"unknown device={device!r}", fix="use device=auto, cpu, cuda or cuda:N",
                        param="device") from None
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta ...: torch knows them, uvis does not run on them
        raise UserError(f"device={device}: uvis runs on a CPU or a CUDA GPU only", fix="use device=auto, cpu, cuda or cuda:N",
                        param="device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={device} but no CUDA device is visible", fix="use device=cpu or auto", param="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"no GPU '{device}': {torch.cuda.device_count()} visible",
                        fix=f"use device=cuda:N with N < {torch.cuda.device_count()}, or cuda", param="device")
    return dev


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 on older GPUs, none on CPU (fp32 there is faster and exact)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class DinoFeatures:
    """A DINO ViT that returns last-block attention keys and patch tokens for a batch of images."""

    def __init__(self, name: str, weights: str | Path | None = None, device: str | torch.device | None = None,
                 *, model: nn.Module | None = None, amp: bool = True, download: bool = True, param: str = "dino_weights"):
        self.arch = _arch(name)
        self.device = pick_device(device)
        self.model = (model if model is not None else load_vit(name, weights, download=download, param=param)).to(self.device).eval()
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
