"""The backbone registry: every pretrained network uvis uses, by name, with its builder and checkpoint layout.

timm-style: ``list_backbones()`` names them, ``backbone_entry(name)`` describes one (builder, published file,
checkpoint layout), ``create_backbone(name, pretrained=...)`` builds it and loads its checkpoint through the one
strict loader (``load_strict``: every key and shape must fit, or a one-line ``UserError`` names what does not).

- DINO ViTs (Caron et al. 2021): ``dino_vits16``, ``dino_vits8``, ``dino_vitb16``, ``dino_vitb8`` (also by
  timm's names, ``vit_base_patch8_224.dino`` ..., and the transformers copies, ``facebook/dino-vitb8`` ...),
  and the test-size ``tiny`` (stage 1) and ``tiny_vit`` (the model). The network is timm's
  ``VisionTransformer``; the official checkpoints' key names already match timm's (``cls_token``,
  ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``,
  ``norm.*``). Full training checkpoints (``teacher`` / ``student`` with ``module.`` / ``backbone.``
  prefixes) are unwrapped, and the transformers layout is converted to timm's names.
- DINO ResNet-50: ``dino_resnet50``, a timm ResNet-50 without classifier; the official file is a
  torchvision-layout state dict, whose keys timm's ResNet shares.
- CLIP (open_clip architectures, ``ViT-B-32`` with OpenAI's weights by default): the published file comes from
  open_clip's table of pretrained weights; the checkpoint is OpenAI's TorchScript archive or a state dict.

Stage 1 (``uvis.features.dino``), the model's backbone (``uvis.model.backbone``) and CLIP naming
(``uvis.pseudo.clip_model``) all build and load through here; where each file is found or downloaded from is
``uvis.features.weights``.

Any input size works for the ViTs: with ``pos_embed="dino"`` (stage 1) the 224-pixel position embedding is
resampled to the input's patch grid exactly as DINO's ``interpolate_pos_encoding`` does it (bicubic with scale
factor (grid + 0.1) / 14 or / 28). timm's own resampling (``pos_embed="timm"``, what the model was trained with)
interpolates to the target size instead, which moves the sample points: on a 60x60 grid (480 px, patch 8)
that changed position embeddings by ~2% of their magnitude.

Only self-supervised (DINO) or image-text (CLIP) weights are ever loaded: never a model trained on human labels.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from uvis.errors import UserError
from uvis.features.weights import Need, Validator, WeightsSpec, read_tensors, resolve, sha256_in_url, unreadable_error

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
# The model's test-size ViT (stage 2): random initialisation only.
TEST_VITS: dict[str, DinoArch] = {"tiny_vit": DinoArch("tiny_vit", 16, 64, 2, 4, None)}
RESNET50_SPEC = _spec("dino_resnet50_pretrain", "DINO ResNet-50")
REAL_VITS = [n for n in VITS if n != "tiny"]  # what help texts and errors list (``tiny`` is for tests)


def backbone_names() -> list[str]:
    """Every accepted ``--backbone`` spelling of a real DINO ViT: uvis's, timm's and the Hugging Face names."""
    out = list(REAL_VITS)
    for n in REAL_VITS:
        a = VITS[n]
        out += [str(a.timm_name), f"hf-hub:timm/{a.timm_name}", str(a.hf_name)]
    return out


def backbone_help(default: str = "dino_vitb8") -> str:
    """The ``--backbone`` help of every command that runs MaskCut."""
    return (f"DINO ViT for MaskCut: {', '.join(REAL_VITS)} (default {default}); timm's names "
            f"({', '.join(str(VITS[n].timm_name) for n in REAL_VITS)}) take timm's copy from the Hugging Face hub, "
            f"{', '.join(str(VITS[n].hf_name) for n in REAL_VITS)} the transformers layout (converted)")


def vit_spec(name: str) -> tuple[DinoArch, WeightsSpec]:
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




# --------------------------------------------------------------------------------------------- the ViT
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


PosEmbed = Literal["dino", "timm"]


def build_vit(arch: DinoArch, *, pos_embed: PosEmbed = "dino", dynamic_img_pad: bool = False) -> nn.Module:
    """An uninitialised-weights timm ViT with DINO's layout (qkv bias, LayerNorm eps 1e-6, no head), for any
    input size. ``pos_embed``: how the position embedding meets another grid (see the module's text);
    ``dynamic_img_pad``: pad inputs up to a patch multiple (else they must be cut to one). Both kinds have the
    same parameters, so a checkpoint of one loads into the other."""
    from timm.models.vision_transformer import VisionTransformer

    class DinoViT(VisionTransformer):
        def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, h, w, D] (dynamic size, NHWC)
            b, h, w, d = x.shape
            x = torch.cat([self.cls_token.expand(b, -1, -1), x.reshape(b, h * w, d)], dim=1)
            return self.pos_drop(x + dino_pos_embed(self.pos_embed, (h, w)))

    if pos_embed not in ("dino", "timm"):
        raise ValueError(f"pos_embed must be 'dino' or 'timm', not {pos_embed!r}")
    cls = DinoViT if pos_embed == "dino" else VisionTransformer
    return cls(img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.embed_dim, depth=arch.depth,
               num_heads=arch.num_heads, mlp_ratio=4.0, qkv_bias=True, num_classes=0, dynamic_img_size=True,
               dynamic_img_pad=dynamic_img_pad)


def build_resnet50() -> nn.Module:
    """timm's ResNet-50 without its classifier (``forward`` gives the pooled 2048-d feature)."""
    import timm

    return timm.create_model("resnet50", pretrained=False, num_classes=0)


# ------------------------------------------------------------------------------------- checkpoint layouts
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


def official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A timm ViT's weights under the official DINO key names (identical names; kept as a function so a
    future timm rename shows up in one place and the tests)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# DINO files that are not part of a backbone: the projection head, a torchvision classifier
SKIPPED_PREFIXES = ("head.", "fc.")
_COUNTER = "num_batches_tracked"  # BatchNorm's step counters: absent from frozen BN, never needed for inference


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path, fix: str,
                skip: Sequence[str] = SKIPPED_PREFIXES) -> None:
    """Load every parameter and buffer of ``model`` from ``state`` (keys under ``skip`` are dropped first); any
    missing, unexpected or mis-shaped key is a ``UserError`` naming it. BatchNorm step counters may be absent
    on either side."""
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not k.startswith(tuple(skip)) and not (k.endswith(_COUNTER) and k not in own)}
    missing = [k for k in own if k not in state and not k.endswith(_COUNTER)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} does not fit {tuple(own[k].shape)}" for k in own
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
    model.load_state_dict({**own, **state})




# ------------------------------------------------------------------------------------------------- CLIP
OPEN_CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_PREFIX = "hf-hub:"
CLIP_NAMES = ("ViT-B-32", "ViT-B-16")  # the architectures uvis documents (any open_clip name works)


def clip_weights_spec(model_name: str, tag: str) -> WeightsSpec | None:
    """The published file for ``model_name``/``tag`` per open_clip's table (its direct URL, with the sha256 the
    URL carries, and open_clip's Hugging Face copy, whose cache is searched too); None when it has neither.
    ``model_name`` may be an ``hf-hub:ORG/REPO`` name (the weights then come from that repository)."""
    import open_clip

    if model_name.startswith(HF_PREFIX):
        repo = model_name[len(HF_PREFIX):].strip("/")
        return WeightsSpec(filename=OPEN_CLIP_HF_FILES[0], url="", title=f"CLIP {model_name}", hf_repo=repo,
                           hf_files=OPEN_CLIP_HF_FILES)
    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    url = cfg.get("url") or ""
    repo = (cfg.get("hf_hub") or "").strip("/") or None
    if not url and not repo:
        return None
    return WeightsSpec(filename=url.rsplit("/", 1)[-1] if url else OPEN_CLIP_HF_FILES[0], url=url,
                       sha256_prefix=sha256_in_url(url), title=f"CLIP {model_name}/{tag}", hf_repo=repo,
                       hf_files=OPEN_CLIP_HF_FILES if repo else ())


def clip_architecture(model_name: str, tag: str) -> tuple[str, str]:
    """(open_clip architecture, pretrained tag) of a CLIP name; an ``hf-hub:`` name is looked up in open_clip's
    table of published weights (``hf-hub:timm/vit_base_patch32_clip_224.openai`` is ``ViT-B-32``/``openai``)."""
    import open_clip

    if not model_name.startswith(HF_PREFIX):
        return model_name, tag
    repo = model_name[len(HF_PREFIX):].strip("/")
    for arch, known_tag in open_clip.list_pretrained():
        if (open_clip.get_pretrained_cfg(arch, known_tag) or {}).get("hf_hub", "").strip("/") == repo:
            return arch, known_tag
    raise UserError(f"unknown CLIP '{model_name}': not in open_clip's table of published weights",
                    fix="pass clip_model=ARCH clip_pretrained=TAG (see open_clip.list_pretrained()), and the "
                        "file as clip_weights=PATH if needed", param="clip_model")


def build_clip(model_name: str = "ViT-B-32", *, quick_gelu: bool = True,
               model_cfg: dict[str, Any] | None = None) -> nn.Module:
    """An uninitialised open_clip CLIP: architecture ``model_name``, or an explicit open_clip config
    (``{"embed_dim", "vision_cfg", "text_cfg", ...}``, e.g. a test size). OpenAI's weights were trained with
    QuickGELU (``quick_gelu``; open_clip's plain configs use nn.GELU and would give worse embeddings)."""
    import copy

    import open_clip

    if model_cfg is not None:
        cfg = copy.deepcopy(model_cfg)
        cfg.setdefault("quick_gelu", quick_gelu)
        return open_clip.model.CLIP(**cfg)
    if open_clip.get_model_config(model_name) is None:
        raise UserError(f"unknown CLIP architecture '{model_name}'",
                        fix="pick one of open_clip.list_models(), e.g. ViT-B-32 or ViT-B-16")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": weights are loaded right after
    try:
        return open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)
    finally:
        logging.disable(previous)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``constants.pkl`` entry; torch.save files lack it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def read_clip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a CLIP checkpoint: an OpenAI TorchScript archive or a (possibly wrapped) state dict."""
    path = Path(path)
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load is deprecated, but OpenAI ships TorchScript
            archive = torch.jit.load(str(path), map_location="cpu")
        state = dict(archive.state_dict())
        for key in ("input_resolution", "context_length", "vocab_size"):
            state.pop(key, None)
        return state
    try:
        obj = read_tensors(path)
    except Exception as e:
        raise unreadable_error(path, e, "clip_weights", "an OpenAI CLIP .pt file or an open_clip state_dict()") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError("not a CLIP checkpoint (no state dict in it)", path=path,
                        fix="pass an OpenAI CLIP .pt file or an open_clip state_dict() as clip_weights=PATH",
                        param="clip_weights")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_clip_weights(model: nn.Module, path: Path) -> None:
    """Load a CLIP checkpoint (OpenAI or open_clip layout) into ``model``: every key and shape must fit."""
    state = read_clip_state_dict(path)
    ls = state.get("logit_scale")
    if ls is not None and ls.ndim != model.logit_scale.ndim:
        state["logit_scale"] = ls.reshape(model.logit_scale.shape)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise UserError(f"weights do not fit the CLIP architecture ({first})", path=path,
                        fix="pass the clip_model=ARCH matching the weights file", param="clip_model") from None
    missing = [k for k in missing if k != "attn_mask"]
    unexpected = [k for k in unexpected if k != "attn_mask"]  # a buffer TorchScript archives also store
    if missing or unexpected:
        shown = ", ".join((missing + unexpected)[:4])
        raise UserError(f"weights do not fit the CLIP architecture ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected keys: {shown})", path=path,
                        fix="pass the clip_model=ARCH matching the weights file", param="clip_model")


# ---------------------------------------------------------------------------------------------- the registry
Kind = Literal["vit", "resnet", "clip"]


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: how to build it and which checkpoint loads into it."""

    name: str
    kind: Kind
    title: str
    build: Callable[..., nn.Module]  # keyword options pass through ``create_backbone``
    weights: WeightsSpec | None  # the published checkpoint; None: random initialisation only (test sizes)
    layout: str  # the checkpoint layouts that load
    param: str  # the parameter that passes its file
    use: str  # what uvis uses it for (named in ``uvis weights`` and errors)
    arch: DinoArch | None = None
    test_only: bool = False

    def fix(self, param: str | None = None) -> str:
        """What to do about a file that does not fit."""
        param = param or self.param
        if self.weights is None:
            return "use init=random"
        source = self.weights.url or f"the Hugging Face hub ({self.weights.hf_repo})"
        also = ", or pick the matching backbone" if self.kind == "vit" else ""
        return f"pass the official {self.weights.filename} ({source}) as {param}=PATH{also}"


_DINO_LAYOUT = ("official DINO state dict or training checkpoint (teacher/student, module./backbone. prefixes), "
                "timm's safetensors copy, or transformers' ViTModel (converted)")


def _vit_entry(arch: DinoArch, spec: WeightsSpec | None, name: str | None = None) -> BackboneEntry:
    def build(**kwargs: Any) -> nn.Module:
        return build_vit(arch, **kwargs)

    return BackboneEntry(name or arch.name, "vit", spec.title if spec else f"test-only ViT {arch.name}", build, spec,
                         _DINO_LAYOUT, "dino_weights", "MaskCut", arch=arch, test_only=arch.name in ("tiny", "tiny_vit"))


def _resnet_entry() -> BackboneEntry:
    return BackboneEntry("dino_resnet50", "resnet", RESNET50_SPEC.title, build_resnet50, RESNET50_SPEC,
                         "torchvision-layout state dict (the classifier, if any, is dropped)", "backbone_weights",
                         "the model's backbone initialisation")


def _clip_entry(name: str, tag: str = "openai") -> BackboneEntry:
    arch, tag = clip_architecture(name, tag)

    def build(**kwargs: Any) -> nn.Module:
        kwargs.setdefault("quick_gelu", tag == "openai")
        return build_clip(arch, **kwargs)

    spec = clip_weights_spec(name, tag)
    return BackboneEntry(name, "clip", spec.title if spec else f"CLIP {name}/{tag}", build, spec,
                         "OpenAI's TorchScript archive or an open_clip state dict", "clip_weights", "naming masks")


def list_backbones(kind: Kind | None = None, *, tests: bool = False) -> list[str]:
    """The registered names (uvis's own; ``backbone_entry`` also takes timm's, transformers' and any open_clip
    name), of one ``kind`` or all; ``tests``: include the test-size ones."""
    names = [*(n for n in VITS if tests or n != "tiny"), *(TEST_VITS if tests else ()), "dino_resnet50", *CLIP_NAMES]
    kinds = {n: "vit" for n in [*VITS, *TEST_VITS]} | {"dino_resnet50": "resnet"} | dict.fromkeys(CLIP_NAMES, "clip")
    return [n for n in names if kind is None or kinds[n] == kind]


def backbone_entry(name: str, *, clip_tag: str = "openai") -> BackboneEntry:
    """The registry entry of a name: a DINO ViT (uvis's, timm's or transformers' name), ``dino_resnet50``, a
    test size, or a CLIP (an open_clip architecture with ``clip_tag``, or ``hf-hub:ORG/REPO``)."""
    if name in TEST_VITS:
        return _vit_entry(TEST_VITS[name], None)
    if name == "dino_resnet50":
        return _resnet_entry()
    if name in CLIP_NAMES or (name.startswith(HF_PREFIX) and not _is_dino_name(name)):
        return _clip_entry(name, clip_tag)
    try:
        arch, spec = vit_spec(name)
    except UserError:
        import open_clip

        if open_clip.get_model_config(name) is not None:
            return _clip_entry(name, clip_tag)
        raise
    return _vit_entry(arch, spec, name)


def _is_dino_name(name: str) -> bool:
    try:
        vit_spec(name)
    except UserError:
        return False
    return True


def _pretrained_path(entry: BackboneEntry, pretrained: str | Path | bool | None) -> str | Path | None:
    if entry.weights is None:
        raise UserError(f"{entry.name} is a test backbone with no DINO checkpoint", fix=entry.fix())
    return None if pretrained is True else pretrained  # type: ignore[return-value]


def load_file(model: nn.Module, entry: BackboneEntry, path: Path, param: str | None = None) -> None:
    """Load checkpoint ``path`` into ``model`` (built for ``entry``, or any network with its key layout) through
    the strict loader of the entry's layout; a file that does not fit is a ``UserError``."""
    param = param or entry.param
    if entry.kind == "clip":
        load_clip_weights(model, path)
        return
    expected = entry.weights.filename if entry.weights else "the official DINO file"
    load_strict(model, read_state_dict(path, param, expected), path, entry.fix(param))


def validator(name: str, param: str | None = None) -> Validator:
    """Load a file into backbone ``name``'s architecture: every key and shape must fit (raises ``UserError``)."""
    entry = backbone_entry(name)  # an unknown name fails now, not when a file is checked

    def validate(path: Path) -> None:
        load_file(entry.build(), entry, path, param)

    return validate


def backbone_need(name: str, weights: str | Path | None = None, param: str | None = None, use: str | None = None) -> Need:
    """The weights file backbone ``name`` needs (for ``check_needs``)."""
    entry = backbone_entry(name)
    if entry.weights is None:
        raise UserError(f"{name} is a test backbone with no published weights", fix=entry.fix())
    param = param or entry.param
    return Need(entry.weights, weights, param, validator(name, param), entry.use if use is None else use)


def resolve_backbone(name: str, weights: str | Path | None = None, *, download: bool = True,
                     param: str | None = None) -> Path:
    """The local weights file of backbone ``name`` (found, or downloaded and verified; ``uvis.features.weights``)."""
    need = backbone_need(name, weights, param)
    return resolve(need.spec, weights, download=download, param=need.param, validate=need.validate)


def load_pretrained(model: nn.Module, name: str, pretrained: str | Path | bool | None = True, *,
                    download: bool = True, param: str | None = None) -> Path:
    """Load backbone ``name``'s checkpoint into ``model`` (which has its key layout): ``pretrained`` True finds
    the published file (``uvis.features.weights``' search order, downloading when allowed), a path is that
    file or a folder holding it. Returns the file used."""
    entry = backbone_entry(name)
    path = resolve_backbone(name, _pretrained_path(entry, pretrained), download=download, param=param)
    load_file(model, entry, path, param)
    return path


def create_backbone(name: str, pretrained: str | Path | bool | None = None, *, download: bool = True,
                    param: str | None = None, **kwargs: Any) -> nn.Module:
    """Build backbone ``name`` (keyword options go to its builder, e.g. ``pos_embed`` and ``dynamic_img_pad`` of
    a ViT) and, unless ``pretrained`` is None/False, load its checkpoint (``load_pretrained``); the file used is
    kept as ``model.weights_path``."""
    entry = backbone_entry(name)
    model = entry.build(**kwargs)
    if pretrained is not None and pretrained is not False:
        model.weights_path = load_pretrained(model, name, pretrained, download=download, param=param)  # type: ignore[assignment]
    return model
