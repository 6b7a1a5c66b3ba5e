"""Model configuration as a typed dataclass, with a tiny preset for tests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from uvis.errors import UserError


@dataclass
class ModelConfig:
    """Shapes of the VIS model. Defaults follow Mask2Former R-50 for YouTube-VIS-like data.

    backbone: timm ResNet name ("resnet50", "resnet18", ...), "tiny" (a 4-stage BasicBlock ResNet of width
        16-128, for tests), or a DINO ViT with a simple feature pyramid ("dino_vits16", "dino_vits8",
        "dino_vitb16", "dino_vitb8"; "tiny_vit" for tests). DINO weights exist for resnet50 and the ViTs.
    freeze_bn: freeze backbone BatchNorm statistics and affine (as Mask2Former does); small per-GPU batches
        make BN statistics noisy.
    num_classes: K; 1 is the class-agnostic mode ("object"). The heads predict K + 1 logits (last = no-object).
    hidden_dim: D, width of the pixel decoder, the queries and the query embeddings.
    num_queries: Q object queries per frame.
    dec_layers: masked-attention decoder layers (cycled round-robin over the 1/32, 1/16, 1/8 features).
    enc_layers: transformer-encoder layers on the 1/32 feature map in the pixel decoder (0 = plain FPN).
    clip_dim: None (default) = no CLIP head. When set (training sets it from the pseudo-labels' CLIP
        embeddings), a 2-layer MLP maps every query embedding into CLIP's embedding space (unit vectors of this
        size) after every decoder layer; it is distilled from the pseudo-masks' CLIP image embeddings and makes
        the trained model open-vocabulary (class names scored against CLIP text embeddings).
    """

    backbone: str = "resnet50"
    freeze_bn: bool = True
    num_classes: int = 1
    hidden_dim: int = 256
    num_queries: int = 100
    nheads: int = 8
    dim_feedforward: int = 2048
    dec_layers: int = 9
    enc_layers: int = 1
    enc_dim_feedforward: int = 1024
    mask_dim: int = 256
    clip_dim: int | None = None

    @staticmethod
    def tiny(num_classes: int = 1) -> ModelConfig:
        """A model of ~0.7M parameters that trains in seconds on a CPU (tests only)."""
        return ModelConfig(backbone="tiny", freeze_bn=False, num_classes=num_classes, hidden_dim=64,
                           num_queries=10, nheads=4, dim_feedforward=128, dec_layers=3, enc_layers=1,
                           enc_dim_feedforward=128, mask_dim=64)

    @staticmethod
    def default(num_classes: int = 1) -> ModelConfig:
        return ModelConfig(num_classes=num_classes)

    @staticmethod
    def preset(name: str, num_classes: int = 1) -> ModelConfig:
        if name == "tiny":
            return ModelConfig.tiny(num_classes)
        if name == "default":
            return ModelConfig.default(num_classes)
        raise UserError(f"unknown preset '{name}'", fix="use preset=tiny or preset=default", param="preset")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(ModelConfig)}
        return ModelConfig(**{k: v for k, v in d.items() if k in known})
