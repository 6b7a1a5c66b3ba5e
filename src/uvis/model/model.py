"""The VIS model: backbone → pixel decoder → masked-attention decoder, applied to each frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uvis.model.backbone import build_backbone
from uvis.model.config import ModelConfig
from uvis.model.layers import MaskedAttentionDecoder, PixelDecoder

# ImageNet statistics, which the DINO ResNet-50 was trained with.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
SIZE_DIVISIBILITY = 32


class VISModel(nn.Module):
    """Per-frame Mask2Former-style segmenter.

    ``forward(images)`` takes [B, 3, H, W] float RGB in [0, 1] (any size; multiples of 4 keep the mask grid
    exactly aligned) and returns ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, ceil(H/4), ceil(W/4)],
    ``embeddings`` [B, Q, D] (final decoder
    output after its LayerNorm) and ``aux_outputs`` (the same two predictions from the initial queries and
    every decoder layer but the last, for deep supervision). With ``config.clip_dim`` every prediction also
    has ``pred_clip`` [B, Q, clip_dim]: unit query embeddings in CLIP's space (open vocabulary).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, freeze_bn=config.freeze_bn)
        self.pixel_decoder = PixelDecoder(self.backbone.channels, config.hidden_dim, config.mask_dim, config.nheads,
                                          config.enc_layers, config.enc_dim_feedforward)
        self.decoder = MaskedAttentionDecoder(config.hidden_dim, config.num_queries, config.nheads,
                                              config.dim_feedforward, config.dec_layers, config.num_classes,
                                              config.mask_dim, clip_dim=config.clip_dim)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> dict:
        h, w = images.shape[-2:]
        x = (images - self.pixel_mean) / self.pixel_std
        # Pad (with the mean colour) to a multiple of 32 so every stride divides exactly, then crop the masks
        # back: mask logits cover the input image exactly (ceil(H/4) x ceil(W/4)), whatever the backbone.
        x = F.pad(x, (0, (-w) % SIZE_DIVISIBILITY, 0, (-h) % SIZE_DIVISIBILITY))
        feats = self.backbone(x)
        mask_features, memory = self.pixel_decoder(feats)
        out = self.decoder(memory, mask_features)
        mh, mw = -(-h // 4), -(-w // 4)
        for pred in [out, *out["aux_outputs"]]:
            pred["pred_masks"] = pred["pred_masks"][..., :mh, :mw]
        return out

    def param_groups(self, lr: float, backbone_lr_mult: float, weight_decay: float) -> list[dict]:
        """AdamW groups: backbone at ``lr * backbone_lr_mult``; no weight decay on norms, biases, embeddings."""
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim <= 1 or "query_" in name or "level_embed" in name
            groups.setdefault((name.startswith("backbone."), no_decay), []).append(p)
        return [
            {"params": ps, "lr": lr * (backbone_lr_mult if bb else 1.0), "weight_decay": 0.0 if nd else weight_decay,
             "lr_mult": backbone_lr_mult if bb else 1.0}
            for (bb, nd), ps in sorted(groups.items())
        ]


def build_model(config: ModelConfig, *, init: str = "random", backbone_weights: str | None = None,
                download: bool = True) -> VISModel:
    """Build a model; ``init="dino"`` loads the self-supervised DINO ResNet-50 into the backbone."""
    model = VISModel(config)
    if init == "dino":
        model.backbone.load_dino(backbone_weights, download=download)
    elif init != "random":
        from uvis.errors import UserError

        raise UserError(f"unknown init={init!r}", fix="use init=dino or init=random", param="init")
    return model
