"""CLIP through open_clip: build an architecture by name, load weights from a local file, encode images and text.

The architecture, its published file and its checkpoint layouts are the backbone registry's
(``uvis.features.backbones``: ``build_clip``, ``clip_weights_spec``, ``load_clip_weights``).

Weights are found by file name through ``uvis.features.weights.resolve`` (``--clip-weights``,
``$UVIS_WEIGHTS_DIR``, the torch hub cache, then a download). For the default ``ViT-B-32`` with the
``openai`` tag that file is OpenAI's ``ViT-B-32.pt`` (a TorchScript archive), at the URL open_clip
itself uses. A plain ``state_dict()`` file (open_clip or OpenAI key layout, optionally under a
``"state_dict"`` key) loads through the same path.

OpenAI's weights were trained with QuickGELU, so ``quick_gelu`` defaults to True for the ``openai``
tag (open_clip's plain ``ViT-B-32`` config uses nn.GELU and would silently give worse embeddings).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from uvis.errors import WeightsNotFoundError
from uvis.features.backbones import HF_PREFIX, build_clip, clip_architecture, clip_weights_spec, load_clip_weights
from uvis.features.weights import Need, Validator, WeightsSpec, file_sha256, resolve


@dataclass
class ClipConfig:
    """Which CLIP to build and where its weights come from."""

    model_name: str = "ViT-B-32"  # an open_clip architecture name (open_clip.list_models())
    pretrained_tag: str = "openai"  # names the published weights file (open_clip's pretrained table)
    weights: str | Path | None = None  # a local weights file or a folder holding it (--clip-weights)
    quick_gelu: bool | None = None  # None: True for the 'openai' tag, else the architecture's default
    device: str | None = None  # None: CUDA when available, else CPU
    download: bool = True  # try the published URL when no local file is found
    # An explicit open_clip model config ({"embed_dim", "vision_cfg", "text_cfg", ...}); overrides the
    # built-in config of ``model_name`` (custom or tiny architectures, e.g. in tests).
    model_cfg: dict[str, Any] | None = field(default=None, repr=False)


def _build(cfg: ClipConfig) -> torch.nn.Module:
    quick_gelu = cfg.quick_gelu if cfg.quick_gelu is not None else cfg.pretrained_tag == "openai"
    return build_clip(cfg.model_name, quick_gelu=quick_gelu, model_cfg=cfg.model_cfg)


def _normalised(cfg: ClipConfig) -> ClipConfig:
    """``cfg`` with an ``hf-hub:`` name replaced by its architecture and tag (the weights stay that repository's)."""
    if cfg.model_cfg is not None or not cfg.model_name.startswith(HF_PREFIX):
        return cfg
    arch, tag = clip_architecture(cfg.model_name, cfg.pretrained_tag)
    return replace(cfg, model_name=arch, pretrained_tag=tag)


def clip_validator(cfg: ClipConfig) -> Validator:
    """Load a file into ``cfg``'s CLIP architecture: every key and shape must fit (raises ``UserError``)."""
    built = _normalised(cfg)

    def validate(path: Path) -> None:
        load_clip_weights(_build(built), path)

    return validate


def clip_need(cfg: ClipConfig, use: str = "naming masks") -> Need:
    """The weights file ``cfg`` needs (for ``check_needs``)."""
    spec = clip_weights_spec(cfg.model_name, cfg.pretrained_tag) if cfg.model_cfg is None else None
    if spec is None:
        label = cfg.model_name if cfg.model_cfg is not None else f"{cfg.model_name}/{cfg.pretrained_tag}"
        spec = WeightsSpec(filename=Path(cfg.weights).name if cfg.weights else f"CLIP {label}", url="",
                           title=f"CLIP {label}, no published file known: pass it as clip_weights=PATH")
    return Need(spec, cfg.weights, "clip_weights", clip_validator(cfg), use)


def find_weights(cfg: ClipConfig) -> Path:
    """The local weights file for ``cfg`` (downloaded and verified when allowed); WeightsNotFoundError otherwise."""
    spec = clip_weights_spec(cfg.model_name, cfg.pretrained_tag) if cfg.model_cfg is None else None
    if spec is not None:
        return resolve(spec, cfg.weights, download=cfg.download, param="clip_weights", validate=clip_validator(cfg))
    if cfg.weights is not None and Path(cfg.weights).is_file():
        return Path(cfg.weights)
    if cfg.weights is not None and not Path(cfg.weights).exists():
        raise WeightsNotFoundError("CLIP weights file not found", path=cfg.weights,
                                   fix="pass the path of an existing weights file as clip_weights=PATH",
                                   param="clip_weights")
    raise WeightsNotFoundError(f"no published weights file is known for CLIP {cfg.model_name}/{cfg.pretrained_tag}",
                               fix="pass the weights file itself as clip_weights=FILE", param="clip_weights")


def _tokenizer(cfg: ClipConfig) -> Any:
    if cfg.model_cfg is not None:
        return None  # custom config: the default CLIP BPE tokenizer
    return open_clip.get_tokenizer(cfg.model_name)


class ClipModel:
    """A CLIP in eval mode with its tokenizer and image normalisation."""

    def __init__(self, model: torch.nn.Module, *, name: str, weights_path: Path | None,
                 device: torch.device | str | None = None, tokenizer: Any = None, pretrained_tag: str | None = None):
        from uvis.features.device import choose_device

        self.device = choose_device(device)  # None: CUDA when available; a bad name is a one-line error
        self.model = model.eval().to(self.device)
        self.name = name
        self.pretrained_tag = pretrained_tag  # recorded with embeddings so a trained model can reload this CLIP
        self.weights_path = weights_path
        ctx = int(getattr(model, "context_length", 77))
        # open_clip's BPE tokenizer ships with the package (no network); named architectures get theirs by name.
        self.tokenizer = tokenizer or open_clip.tokenizer.SimpleTokenizer(context_length=ctx)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        pre = getattr(model.visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(pre.get("mean", OPENAI_DATASET_MEAN))
        self.std = tuple(pre.get("std", OPENAI_DATASET_STD))
        self._weights_digest: str | None = None
        self.text_cache: dict[str, torch.Tensor] = {}  # class embeddings by vocabulary key (see vocabulary.py)

    @classmethod
    def load(cls, cfg: ClipConfig | None = None) -> ClipModel:
        """Build ``cfg.model_name`` and load its weights; WeightsNotFoundError when none can be had."""
        cfg = cfg or ClipConfig()
        path = find_weights(cfg)
        cfg = _normalised(cfg)
        model = _build(cfg)
        load_clip_weights(model, path)
        return cls(model, name=cfg.model_name, weights_path=path, device=cfg.device, tokenizer=_tokenizer(cfg),
                   pretrained_tag=cfg.pretrained_tag)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    def weights_digest(self) -> str:
        """SHA-256 of the weights file (computed once); keys the on-disk text-embedding cache.

        A model without a weights file (random init) gets a token unique to this object, so its
        embeddings are never mistaken for another model's.
        """
        if self._weights_digest is None:
            if self.weights_path is None:
                self._weights_digest = f"unsaved-{uuid.uuid4().hex}"
            else:
                self._weights_digest = file_sha256(self.weights_path)
        return self._weights_digest

    def identity(self) -> dict[str, Any]:
        """Everything that changes this CLIP's embeddings, for cache keys: a cache made by one model must never
        be read by another (same weights with QuickGELU vs GELU, another tag, image size or normalisation)."""
        arch = hashlib.sha256()
        for name, module in self.model.named_modules():  # module types: QuickGELU vs nn.GELU, norm layers, ...
            arch.update(f"{name}:{type(module).__name__};".encode())
        for name, t in self.model.state_dict().items():
            arch.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        quick_gelu = any(isinstance(m, open_clip.transformer.QuickGELU) for m in self.model.modules())
        return {
            "model": self.name, "pretrained": self.pretrained_tag, "weights": self.weights_digest(),
            "quick_gelu": quick_gelu, "architecture": arch.hexdigest()[:16], "image_size": self.image_size,
            "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
            "tokenizer": type(self.tokenizer).__name__, "context_length": int(getattr(self.model, "context_length", 77)),
        }

    def _autocast(self):
        if self.device.type == "cuda":
            from uvis.features.device import autocast_dtype

            return torch.autocast("cuda", dtype=autocast_dtype(self.device))  # bf16, or fp16 where bf16 is missing
        return torch.autocast("cpu", enabled=False)

    @torch.inference_mode()
    def encode_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised text embeddings (float32, on CPU), one row per text."""
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(texts[i:i + batch_size]).to(self.device)
            with self._autocast():
                emb = self.model.encode_text(tokens)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        if not out:
            return torch.zeros(0, self.embed_dim)
        return torch.cat(out)

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (float32, on CPU) of normalised Bx3xSxS images."""
        with self._autocast():
            emb = self.model.encode_image(images.to(self.device, non_blocking=True))
        return F.normalize(emb.float(), dim=-1).cpu()

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if getattr(self.model, "text_projection", None) is not None \
            else int(self.model.visual.output_dim)


def random_clip(cfg: ClipConfig | None = None, *, seed: int = 0) -> ClipModel:
    """A randomly initialised CLIP of ``cfg``'s architecture (benchmarks; never for real labels)."""
    cfg = cfg or ClipConfig()
    torch.manual_seed(seed)
    return ClipModel(_build(cfg), name=cfg.model_name, weights_path=None, device=cfg.device, tokenizer=_tokenizer(cfg))
