"""The backbone registry (``uvis.features.backbones``): names, builders, checkpoint layouts, the strict loader."""

from __future__ import annotations

import pytest
import torch

from uvis.errors import UserError
from uvis.features import backbones
from uvis.model.backbone import ResNetBackbone, ViTBackbone


def test_list_backbones_by_kind():
    assert backbones.list_backbones("vit") == ["dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8"]
    assert backbones.list_backbones("resnet") == ["dino_resnet50"]
    assert backbones.list_backbones("clip") == ["ViT-B-32", "ViT-B-16"]
    assert backbones.list_backbones() == [*backbones.list_backbones("vit"), "dino_resnet50", "ViT-B-32", "ViT-B-16"]
    assert {"tiny", "tiny_vit"} <= set(backbones.list_backbones("vit", tests=True))


def test_entries_name_the_published_file_and_layout():
    vit = backbones.backbone_entry("dino_vitb8")
    assert (vit.kind, vit.param, vit.weights.filename) == ("vit", "dino_weights", "dino_vitbase8_pretrain.pth")
    assert "teacher" in vit.layout and vit.arch.patch_size == 8 and not vit.test_only
    timm_copy = backbones.backbone_entry("hf-hub:timm/vit_small_patch16_224.dino")
    assert timm_copy.kind == "vit" and timm_copy.weights.hf_repo == "timm/vit_small_patch16_224.dino"
    resnet = backbones.backbone_entry("dino_resnet50")
    assert (resnet.kind, resnet.param, resnet.weights.filename) == ("resnet", "backbone_weights",
                                                                   "dino_resnet50_pretrain.pth")
    clip = backbones.backbone_entry("ViT-B-32")
    assert (clip.kind, clip.param, clip.weights.filename) == ("clip", "clip_weights", "ViT-B-32.pt")
    assert clip.weights.sha256_prefix  # OpenAI's URL carries it
    assert backbones.backbone_entry("hf-hub:timm/vit_base_patch32_clip_224.openai").kind == "clip"
    assert backbones.backbone_entry("tiny_vit").weights is None
    with pytest.raises(UserError, match="unknown backbone 'dino_vitx'"):
        backbones.backbone_entry("dino_vitx")


def test_stage_one_and_the_model_build_the_same_vit_and_load_the_same_file(tmp_path):
    """One ViT, one loader: a checkpoint in the official layout loads into stage 1's ViT and the model's."""
    torch.manual_seed(0)
    stage1 = backbones.create_backbone("dino_vits16")
    state = {f"module.backbone.{k}": v + 1.0 for k, v in backbones.official_state_dict(stage1).items()}
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save({"teacher": state}, path)
    loaded = backbones.create_backbone("dino_vits16", path)
    assert loaded.weights_path == path
    model = ViTBackbone("dino_vits16")
    assert model.load_dino(path, download=False) == path
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[f"module.backbone.{k}"]), k
        assert torch.equal(model.net.state_dict()[k], v), k
    # the two differ only in how the position embedding meets another grid, and in padding
    x = torch.rand(1, 3, 64, 64)  # a 4x4 grid: both resample the 14x14 embedding
    out_dino = loaded.forward_features(x)
    out_timm = model.net.forward_features(x)
    assert out_dino.shape == out_timm.shape and not torch.allclose(out_dino, out_timm)
    x224 = torch.rand(1, 3, 224, 224)  # the checkpoint's own grid: no resampling, the same network
    assert torch.allclose(loaded.forward_features(x224), model.net.forward_features(x224), atol=1e-5)


def test_resnet_checkpoint_loads_into_the_registry_and_the_model(tmp_path):
    torch.manual_seed(0)
    src = backbones.create_backbone("dino_resnet50")
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's classifier: not part of the backbone
    path = tmp_path / "dino_resnet50_pretrain.pth"
    torch.save(state, path)
    loaded = backbones.create_backbone("dino_resnet50", tmp_path)  # a folder holding the published name
    assert torch.equal(loaded.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    model = ResNetBackbone("resnet50", freeze_bn=True)  # frozen BN has no step counters
    assert model.load_dino(path, download=False) == path
    assert torch.equal(model.net.bn1.running_mean, state["bn1.running_mean"])


def test_the_strict_loader_names_what_does_not_fit(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    good = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path / "x.pth"
    backbones.load_strict(net, {**good, "head.w": torch.zeros(1), "fc.bias": torch.zeros(2)}, path, "fix it")
    without_counter = {k: v for k, v in good.items() if not k.endswith("num_batches_tracked")}
    backbones.load_strict(net, without_counter, path, "fix it")
    with pytest.raises(UserError, match=r"missing \['0.bias'\].*fix: fix it"):
        backbones.load_strict(net, {k: v for k, v in good.items() if k != "0.bias"}, path, "fix it")
    with pytest.raises(UserError, match=r"unexpected \['extra'\]"):
        backbones.load_strict(net, {**good, "extra": torch.zeros(1)}, path, "fix it")
    with pytest.raises(UserError, match=r"shape mismatch \['0.weight \(2, 3\) does not fit \(4, 3\)'\]"):
        backbones.load_strict(net, {**good, "0.weight": torch.zeros(2, 3)}, path, "fix it")
    with pytest.raises(UserError, match="weights do not fit this backbone"):
        backbones.load_strict(net, {}, path, "fix it")


def test_test_sizes_have_no_checkpoint(tmp_path):
    net = backbones.create_backbone("tiny_vit")
    with pytest.raises(UserError, match="no DINO checkpoint.*init=random"):
        backbones.load_pretrained(net, "tiny_vit", tmp_path / "w.pth")
    with pytest.raises(UserError, match="no published weights"):
        backbones.backbone_need("tiny_vit")


def test_clip_through_the_registry(tmp_path):
    import open_clip

    from tiny_clip import TINY_CFG, save_tiny_clip

    path = save_tiny_clip(tmp_path)
    model = backbones.create_backbone("ViT-B-32", path, model_cfg=TINY_CFG)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(model.state_dict()["text_projection"], saved["text_projection"])
    assert isinstance(model, open_clip.model.CLIP) and model.weights_path == path
    other = dict(TINY_CFG, embed_dim=8)
    with pytest.raises(UserError, match="do not fit the CLIP architecture"):
        backbones.create_backbone("ViT-B-32", path, model_cfg=other)
