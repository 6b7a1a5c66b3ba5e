"""CLIP through open_clip: build an architecture by name, load weights from a local file, encode images and text.

Weights are found by file name through ``uvis.features.weights.resolve`` (``--clip-weights``,
``$UVIS_WEIGHTS_DIR``, the torch hub cache, then a download). For the default ``ViT-B-32`` with the
``openai`` tag that file is OpenAI's ``ViT-B-32.pt`` (a TorchScript archive), at the URL open_clip
itself uses. A plain ``state_dict()`` file (open_clip or OpenAI key layout, optionally under a
``"state_dict"`` key) loads through the same path.

OpenAI's weights were trained with QuickGELU, so ``quick_gelu`` defaults to True for the ``openai``
tag (open_clip's plain ``ViT-B-32`` config uses nn.GELU and would silently give worse embeddings).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from uvis.errors import UserError, WeightsNotFoundError
from uvis.features.weights import (
    Need,
    Validator,
    WeightsSpec,
    file_sha256,
    read_tensors,
    resolve,
    sha256_in_url,
    unreadable_error,
)


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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


OPEN_CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_PREFIX = "hf-hub:"


def weights_spec(model_name: str, tag: str) -> WeightsSpec | None:
    """The published file for ``model_name``/``tag`` per open_clip's table (its direct URL, with the sha256 the
    URL carries, and open_clip's Hugging Face copy, whose cache is searched too); None when it has neither.
    ``model_name`` may be an ``hf-hub:ORG/REPO`` name (the weights then come from that repository)."""
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


def architecture_of(model_name: str, tag: str) -> tuple[str, str]:
    """(open_clip architecture, pretrained tag) of a CLIP name; an ``hf-hub:`` name is looked up in open_clip's
    table of published weights (``hf-hub:timm/vit_base_patch32_clip_224.openai`` is ``ViT-B-32``/``openai``)."""
    if not model_name.startswith(HF_PREFIX):
        return model_name, tag
    repo = model_name[len(HF_PREFIX):].strip("/")
    for arch, known_tag in open_clip.list_pretrained():
        if (open_clip.get_pretrained_cfg(arch, known_tag) or {}).get("hf_hub", "").strip("/") == repo:
            return arch, known_tag
    raise UserError(f"unknown CLIP '{model_name}': not in open_clip's table of published weights",
                    fix="pass clip_model=ARCH clip_pretrained=TAG (see open_clip.list_pretrained()), and the "
                        "file as clip_weights=PATH if needed", param="clip_model")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``constants.pkl`` entry; torch.save files lack it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
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


def _build(cfg: ClipConfig) -> torch.nn.Module:
    quick_gelu = cfg.quick_gelu if cfg.quick_gelu is not None else cfg.pretrained_tag == "openai"
    if cfg.model_cfg is not None:
        model_cfg = copy.deepcopy(cfg.model_cfg)
        model_cfg.setdefault("quick_gelu", quick_gelu)
        return open_clip.model.CLIP(**model_cfg)
    if open_clip.get_model_config(cfg.model_name) is None:
        raise UserError(f"unknown CLIP architecture '{cfg.model_name}'",
                        fix="pick one of open_clip.list_models(), e.g. ViT-B-32 or ViT-B-16")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": weights are loaded right after
    try:
        return open_clip.create_model(cfg.model_name, pretrained=None, force_quick_gelu=quick_gelu)
    finally:
        logging.disable(previous)


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    state = read_state_dict(path)
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


def _normalised(cfg: ClipConfig) -> ClipConfig:
    """``cfg`` with an ``hf-hub:`` name replaced by its architecture and tag (the weights stay that repository's)."""
    if cfg.model_cfg is not None or not cfg.model_name.startswith(HF_PREFIX):
        return cfg
    arch, tag = architecture_of(cfg.model_name, cfg.pretrained_tag)
    return replace(cfg, model_name=arch, pretrained_tag=tag)


def clip_validator(cfg: ClipConfig) -> Validator:
    """Load a file into ``cfg``'s CLIP architecture: every key and shape must fit (raises ``UserError``)."""
    built = _normalised(cfg)

    def validate(path: Path) -> None:
        _load_weights(_build(built), path)

    return validate


def clip_need(cfg: ClipConfig, use: str = "naming masks") -> Need:
    """The weights file ``cfg`` needs (for ``check_needs``)."""
    spec = weights_spec(cfg.model_name, cfg.pretrained_tag) if cfg.model_cfg is None else None
    if spec is None:
        label = cfg.model_name if cfg.model_cfg is not None else f"{cfg.model_name}/{cfg.pretrained_tag}"
        spec = WeightsSpec(filename=Path(cfg.weights).name if cfg.weights else f"CLIP {label}", url="",
                           title=f"CLIP {label}, no published file known: pass it as clip_weights=PATH")
    return Need(spec, cfg.weights, "clip_weights", clip_validator(cfg), use)


def find_weights(cfg: ClipConfig) -> Path:
    """The local weights file for ``cfg`` (downloaded and verified when allowed); WeightsNotFoundError otherwise."""
    spec = weights_spec(cfg.model_name, cfg.pretrained_tag) if cfg.model_cfg is None else None
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
        from uvis.features.dino import pick_device

        self.device = pick_device(device)  # None: CUDA when available; a bad name is a one-line error
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
        _load_weights(model, path)
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
            from uvis.features.dino import autocast_dtype

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
