from pathlib import Path

import pytest
import torch

from uvis.errors import UserError
from uvis.model import ModelConfig, build_model
from uvis.model.backbone import ResNetBackbone, ViTBackbone
from uvis.model.layers import MaskedAttentionDecoder


def test_tiny_model_shapes_and_deep_supervision():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(num_classes=3)
    model = build_model(cfg)
    out = model(torch.rand(2, 3, 64, 96))
    assert out["pred_logits"].shape == (2, cfg.num_queries, 4)
    assert out["pred_masks"].shape == (2, cfg.num_queries, 16, 24)
    assert out["embeddings"].shape == (2, cfg.num_queries, cfg.hidden_dim)
    # one prediction from the initial queries plus one per decoder layer
    assert len(out["aux_outputs"]) == cfg.dec_layers
    loss = out["pred_masks"].mean() + out["pred_logits"].mean() + sum(a["pred_masks"].mean() for a in out["aux_outputs"])
    loss.backward()
    assert model.decoder.query_feat.weight.grad is not None
    assert model.backbone.net.conv1.weight.grad is not None


def test_attention_mask_unmasks_empty_rows():
    dec = MaskedAttentionDecoder(dim=16, num_queries=3, nheads=2, ffn=32, num_layers=1, num_classes=1, mask_dim=16)
    q = torch.zeros(1, 3, 16)
    feats = torch.zeros(1, 16, 4, 4)
    with torch.no_grad():
        dec.mask_embed.layers[-1].weight.zero_()
        dec.mask_embed.layers[-1].bias.fill_(-1.0)  # every mask logit negative: all rows fully masked
        feats[:, 0] = 1.0
    pred, _, attn = dec.predict(q, feats, (2, 2))
    masks = pred["pred_masks"]
    assert (masks < 0).all()
    assert attn.shape == (2 * 1, 3, 4)
    assert not attn.any()  # fully masked rows fall back to attending everywhere


def test_attention_mask_follows_previous_prediction():
    dec = MaskedAttentionDecoder(dim=4, num_queries=1, nheads=1, ffn=8, num_layers=1, num_classes=1, mask_dim=4)
    feats = torch.zeros(1, 4, 4, 4)
    feats[0, 0, :2] = 10.0  # positive mask logits in the top half only
    feats[0, 0, 2:] = -10.0
    with torch.no_grad():
        for layer in dec.mask_embed.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        dec.mask_embed.layers[-1].bias[0] = 1.0
    _, _, attn = dec.predict(torch.zeros(1, 1, 4), feats, (4, 4))
    assert attn.view(4, 4)[:2].logical_not().all() and attn.view(4, 4)[2:].all()


def test_backbone_loads_dino_layout(tmp_path: Path):
    src = ResNetBackbone("resnet18")
    state = {k: v.clone() + 1.0 for k, v in src.net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(10, 512)  # a torchvision checkpoint carries a classifier; it is dropped
    path = tmp_path / "dino_resnet50_pretrain.pth"
    torch.save(state, path)
    dst = ResNetBackbone("resnet18", freeze_bn=True)
    assert dst.load_dino(path, download=False) == path
    assert torch.equal(dst.net.conv1.weight, state["conv1.weight"])
    assert torch.equal(dst.net.bn1.running_mean, state["bn1.running_mean"])


def test_backbone_rejects_wrong_checkpoint(tmp_path: Path):
    path = tmp_path / "x.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="does not fit"):
        ResNetBackbone("resnet18").load_dino(path, download=False)
    with pytest.raises(UserError, match="not found"):
        ResNetBackbone("tiny").load_dino(tmp_path / "missing.pth", download=False)


def test_vit_backbone_pyramid_and_dino_layout(tmp_path: Path):
    torch.manual_seed(0)
    bb = ViTBackbone("tiny_vit")
    feats = bb(torch.rand(1, 3, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in feats] == bb.channels
    cfg = ModelConfig.tiny()
    cfg.backbone = "tiny_vit"
    out = build_model(cfg)(torch.rand(2, 3, 72, 100))  # not a multiple of the patch size: padded, then cropped
    assert out["pred_masks"].shape == (2, cfg.num_queries, 18, 25)
    # a DINO ViT checkpoint (training-checkpoint layout: teacher + module./backbone. prefixes) loads into timm
    vit = ViTBackbone("dino_vits16")
    state = {f"module.backbone.{k}": v + 1.0 for k, v in vit.net.state_dict().items()}
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save({"teacher": state}, path)
    assert vit.load_dino(path, download=False) == path
    assert torch.equal(vit.net.pos_embed, state["module.backbone.pos_embed"])
    with pytest.raises(UserError, match="no DINO checkpoint"):
        bb.load_dino(path)


def test_mask_logits_have_a_quarter_of_any_input_size():
    """Inputs are padded to a multiple of 32 inside and mask logits cropped back to ceil(H/4) x ceil(W/4)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny()).eval()
    with torch.no_grad():
        for (h, w), expect in {(64, 96): (16, 24), (66, 97): (17, 25), (40, 40): (10, 10)}.items():
            assert model(torch.rand(1, 3, h, w))["pred_masks"].shape[-2:] == expect


def test_frozen_bn_backbone_loads_a_checkpoint_with_batch_counters(tmp_path: Path):
    """torchvision/DINO ResNet checkpoints carry ``*.num_batches_tracked``; frozen BN (the default) has none."""
    src = ResNetBackbone("resnet18")
    state = {k: v.clone() + (1.0 if v.is_floating_point() else 0) for k, v in src.net.state_dict().items()}
    assert any(k.endswith("num_batches_tracked") for k in state)
    path = tmp_path / "dino_resnet50_pretrain.pth"
    torch.save(state, path)
    dst = ResNetBackbone("resnet18", freeze_bn=True)
    dst.load_dino(path, download=False)
    assert torch.equal(dst.net.bn1.running_var, state["bn1.running_var"])
    assert torch.equal(dst.net.layer4[1].bn2.weight, state["layer4.1.bn2.weight"])
