"""Backbones returning stride-4/8/16/32 feature maps, optionally DINO-initialised.

- timm ResNets (``resnet50`` ...; ``tiny`` for tests). DINO weights: ``dino_resnet50_pretrain.pth``, a
  torchvision-layout state dict whose keys timm's ResNet shares.
- DINO ViTs (``dino_vits16``, ``dino_vits8``, ``dino_vitb16``, ``dino_vitb8``; ``tiny_vit`` for tests) with a
  ViTDet-style simple feature pyramid: the last block's patch map is up-sampled by transposed convolutions
  and down-sampled by max-pooling to strides 4..32. The official DINO checkpoints use timm's key names.

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
from uvis.features import dino
from uvis.features import weights as weights_lookup

# name: (patch size, width, depth, heads, published DINO weights), from the one table of DINO checkpoints
VITS: dict[str, tuple[int, int, int, int, weights_lookup.WeightsSpec | None]] = {
    name: (a.patch_size, a.embed_dim, a.depth, a.num_heads, a.spec) for name, a in dino.VITS.items() if name != "tiny"
}
VITS["tiny_vit"] = (16, 64, 2, 4, None)
DINO_RESNET50 = dino.RESNET50_SPEC


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], file: Path, skip: tuple[str, ...]) -> None:
    own = net.state_dict()
    # BatchNorm's step counters: absent from frozen BN (the default), and never needed for inference statistics
    state = {k: v for k, v in state.items()
             if not k.startswith(skip) and not (k.endswith("num_batches_tracked") and k not in own)}
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if bad or missing:
        raise UserError(f"checkpoint does not fit the backbone (unexpected {bad[:3]}, missing {missing[:3]})",
                        path=file, fix="pass the DINO checkpoint of the configured backbone")
    own.update(state)
    net.load_state_dict(own)


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
        file = weights_lookup.resolve(DINO_RESNET50, path, download=download, param="backbone_weights",
                                      validate=dino.resnet50_validator())
        state = dino.read_state_dict(file, "backbone_weights", DINO_RESNET50.filename)
        _load_into(self.net, state, file, skip=("fc.", "head."))
        return file


class ViTBackbone(nn.Module):
    """A DINO ViT (timm layout) with a simple feature pyramid; ``forward`` returns strides 4, 8, 16, 32."""

    def __init__(self, name: str):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        patch, dim, depth, heads, self.spec = VITS[name]
        self.name = name
        self.patch = patch
        self.net = VisionTransformer(img_size=224, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                                     qkv_bias=True, num_classes=0, dynamic_img_size=True, dynamic_img_pad=True)
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
        if self.spec is None:
            raise UserError("this test backbone has no DINO checkpoint", fix="use init=random")
        file = weights_lookup.resolve(self.spec, path, download=download, param="backbone_weights",
                                      validate=dino.vit_validator(self.name, "backbone_weights"))
        state = dino.read_state_dict(file, "backbone_weights", self.spec.filename)
        if "pos_embed" in state and state["pos_embed"].shape != self.net.pos_embed.shape:
            raise UserError(f"pos_embed {tuple(state['pos_embed'].shape)} does not fit", path=file,
                            fix=f"pass {self.spec.filename}")
        _load_into(self.net, state, file, skip=("head.",))
        return file
