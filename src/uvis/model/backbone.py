"""Backbones: timm ResNets returning stride-4/8/16/32 feature maps, optionally DINO-initialised.

Only self-supervised weights are ever loaded: the DINO ResNet-50 checkpoint
(``dino_resnet50_pretrain.pth``, a torchvision-layout state dict whose keys timm's ResNet shares).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.layers import freeze_batch_norm_2d
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from uvis.errors import UserError
from uvis.features import weights as weights_lookup

DINO_RESNET50 = weights_lookup.WeightsSpec(
    filename="dino_resnet50_pretrain.pth",
    url="https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
)


class ResNetBackbone(nn.Module):
    """A timm ResNet without its classifier; ``forward`` returns [C2, C3, C4, C5] (strides 4, 8, 16, 32)."""

    def __init__(self, name: str, *, freeze_bn: bool = False):
        super().__init__()
        if name == "tiny":
            net = ResNet(block=BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16,
                         num_classes=0)
        else:
            try:
                net = timm.create_model(name, pretrained=False, num_classes=0)
            except RuntimeError:
                raise UserError(f"unknown backbone '{name}'", fix="use a timm ResNet name, e.g. resnet50") from None
            if not isinstance(net, ResNet):
                raise UserError(f"backbone '{name}' is not a ResNet", fix="use a timm ResNet name, e.g. resnet50")
        self.net = freeze_batch_norm_2d(net) if freeze_bn else net
        self.channels: list[int] = [info["num_chs"] for info in net.feature_info[1:5]]
        self.strides: list[int] = [info["reduction"] for info in net.feature_info[1:5]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)

    def load_dino(self, path: str | Path | None = None, *, download: bool = True) -> Path:
        """Load the DINO ResNet-50 weights (found via ``uvis.features.weights``); returns the file used."""
        file = weights_lookup.resolve(DINO_RESNET50, path, download=download)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"cannot read checkpoint ({type(e).__name__})", path=file,
                            fix=f"download {DINO_RESNET50.url} again") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.net.state_dict()
        bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        if bad or missing:
            raise UserError(f"checkpoint does not fit backbone (unexpected {bad[:3]}, missing {missing[:3]})",
                            path=file, fix="pass dino_resnet50_pretrain.pth with --config default")
        own.update(state)
        self.net.load_state_dict(own)
        return file
