"""Backbones returning stride-4/8/16/32 feature maps, optionally DINO-initialised.

- timm ResNets (``resnet50`` ...; ``tiny`` for tests). DINO weights: ``dino_resnet50_pretrain.pth``, a
  torchvision-layout state dict whose keys timm's ResNet shares.
- DINO ViTs (``dino_vits16``, ``dino_vits8``, ``dino_vitb16``, ``dino_vitb8``; ``tiny_vit`` for tests) with a
  ViTDet-style simple feature pyramid: the last block's patch map is up-sampled by transposed convolutions
  and down-sampled by max-pooling to strides 4..32.

Both build their networks and load the DINO checkpoints through the backbone registry
(``uvis.features.backbones``), with the one strict loader stage 1 uses too.

Only self-supervised weights are ever loaded: never a model trained on human labels.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.layers import freeze_batch_norm_2d
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from uvis.errors import UserError
from uvis.features import backbones

# The model's ViTs: the registry's, but not stage 1's test-size ``tiny`` (here ``tiny`` is a ResNet)
VITS = [n for n in backbones.list_backbones("vit", tests=True) if n != "tiny"]
PARAM = "backbone_weights"


def build_backbone(name: str, *, freeze_bn: bool = False) -> ResNetBackbone | ViTBackbone:
    return ViTBackbone(name) if name in VITS else ResNetBackbone(name, freeze_bn=freeze_bn)


class ResNetBackbone(nn.Module):
    """A timm ResNet without its classifier; ``forward`` returns [C2, C3, C4, C5] (strides 4, 8, 16, 32)."""

    def __init__(self, name: str, *, freeze_bn: bool = False):
        super().__init__()
        if name == "tiny":
            net = ResNet(block=BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16,
                         num_classes=0)
        else:
            if name not in timm.list_models(module="resnet"):
                raise UserError(f"unknown backbone '{name}'",
                                fix=f"use a timm ResNet (e.g. resnet50) or one of {', '.join(VITS)}")
            net = timm.create_model(name, pretrained=False, num_classes=0)
        self.net = freeze_batch_norm_2d(net) if freeze_bn else net
        self.channels: list[int] = [info["num_chs"] for info in net.feature_info[1:5]]
        self.strides: list[int] = [info["reduction"] for info in net.feature_info[1:5]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)

    def load_dino(self, path: str | Path | None = None, *, download: bool = True) -> Path:
        """Load the DINO ResNet-50 weights (found via ``uvis.features.weights``); returns the file used."""
        return backbones.load_pretrained(self.net, "dino_resnet50", True if path is None else path,
                                         download=download, param=PARAM)


class ViTBackbone(nn.Module):
    """A DINO ViT (timm layout) with a simple feature pyramid; ``forward`` returns strides 4, 8, 16, 32."""

    def __init__(self, name: str):
        super().__init__()
        entry = backbones.backbone_entry(name)
        assert entry.arch is not None
        self.name = name
        self.patch = patch = entry.arch.patch_size
        dim = entry.arch.embed_dim
        # timm's position-embedding resampling (what trained models use) and padding to a patch multiple
        self.net = backbones.create_backbone(name, pos_embed="timm", dynamic_img_pad=True)
        # Per output stride: the scale change from the patch map (ViTDet's simple pyramid).
        self.levels = nn.ModuleList()
        self.channels = []
        for stride in (4, 8, 16, 32):
            ops: list[nn.Module] = []
            c = dim
            s = patch
            while s > stride:
                ops += [nn.ConvTranspose2d(c, c // 2, 2, stride=2)]
                c, s = c // 2, s // 2
                if s > stride:
                    ops += [nn.GroupNorm(1, c), nn.GELU()]
            while s < stride:
                ops.append(nn.MaxPool2d(2))
                s *= 2
            self.levels.append(nn.Sequential(*ops))
            self.channels.append(c)
        self.strides = [4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fmap = self.net.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True)[-1]
        return [level(fmap) for level in self.levels]

    def load_dino(self, path: str | Path | None = None, *, download: bool = True) -> Path:
        return backbones.load_pretrained(self.net, self.name, True if path is None else path, download=download,
                                         param=PARAM)
