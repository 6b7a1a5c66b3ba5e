"""DINO loading through the official checkpoint layout, with a tiny random ViT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uvis.errors import UserError, WeightsNotFoundError
from uvis.features import backbones, dino, weights


def _save_tiny(path, seed=0):
    torch.manual_seed(seed)
    model = backbones.build_vit(backbones.VITS["tiny"])
    state = backbones.official_state_dict(model)
    torch.save(state, path)
    return state


def test_official_names_match_timm():
    keys = set(backbones.build_vit(backbones.VITS["dino_vits8"]).state_dict())
    for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.11.attn.qkv.bias", "norm.weight"):
        assert k in keys
    assert backbones.VITS["dino_vitb8"].spec.url == (
        "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth")
    assert backbones.VITS["dino_vits16"].spec.filename == "dino_deitsmall16_pretrain.pth"


def test_load_by_path_and_env(tmp_path, monkeypatch):
    state = _save_tiny(tmp_path / "w.pth")
    model = backbones.create_backbone("tiny", tmp_path / "w.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    wdir = tmp_path / "wdir"
    wdir.mkdir()
    _save_tiny(wdir / "dino_tiny_test.pth", seed=1)
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(wdir))
    model2 = backbones.create_backbone("tiny", True)
    assert not torch.equal(model2.pos_embed, model.pos_embed)
    # a folder passed as dino_weights holds the file under its published name
    model3 = backbones.create_backbone("tiny", wdir)
    assert torch.equal(model3.pos_embed, model2.pos_embed)


def test_training_checkpoint_is_unwrapped(tmp_path):
    state = _save_tiny(tmp_path / "w.pth")
    full = {"teacher": {f"backbone.{k}": v for k, v in state.items()} | {"head.last_layer.weight": torch.zeros(2)},
            "epoch": 3}
    torch.save(full, tmp_path / "full.pth")
    model = backbones.create_backbone("tiny", tmp_path / "full.pth")
    assert torch.equal(model.cls_token, state["cls_token"])


def test_wrong_or_corrupt_file(tmp_path):
    state = _save_tiny(tmp_path / "w.pth")
    del state["norm.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(UserError, match="norm.weight"):
        backbones.create_backbone("tiny", tmp_path / "missing.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read weights"):
        backbones.create_backbone("tiny", tmp_path / "bad.pth")
    with pytest.raises(UserError, match="shape mismatch|missing|unexpected"):
        backbones.create_backbone("dino_vits8", tmp_path / "w.pth")
    with pytest.raises(UserError, match="unknown backbone"):
        backbones.create_backbone("dino_vitx", tmp_path / "w.pth")


def test_missing_weights_names_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as e:  # the download is refused (tests/conftest.py: no network)
        backbones.create_backbone("dino_vits8", True)
    msg = str(e.value)
    assert "dino_deitsmall8_pretrain.pth" in msg and str(tmp_path / "empty") in msg and "dino_weights=PATH" in msg
    with pytest.raises(WeightsNotFoundError):
        backbones.create_backbone("tiny", tmp_path / "nope.pth")


def test_weights_folder_without_the_file_is_not_silently_replaced(tmp_path, monkeypatch):
    """dino_weights=FOLDER names where the file is: when it is not there, say so instead of quietly loading
    another copy from $UVIS_WEIGHTS_DIR or the cache."""
    wdir = tmp_path / "wdir"
    wdir.mkdir()
    _save_tiny(wdir / "dino_tiny_test.pth")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(wdir))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "dino_tiny_tset.pth").write_bytes(b"misspelt")
    with pytest.raises(WeightsNotFoundError, match="dino_tiny_test.pth") as err:
        backbones.create_backbone("tiny", tmp_path / "mine")
    assert str(tmp_path / "mine") in str(err.value) and "\n" not in str(err.value)


def test_position_embedding_follows_dino():
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert backbones.dino_pos_embed(pos, (14, 14)) is pos
    out = backbones.dino_pos_embed(pos, (30, 45))
    assert out.shape == (1, 1 + 30 * 45, 8) and torch.equal(out[:, 0], pos[:, 0])
    # DINO's rule: bicubic with scale factor (grid + 0.1) / 14, written out for one case
    ref = torch.nn.functional.interpolate(pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2),
                                          scale_factor=(30.1 / 14, 45.1 / 14), mode="bicubic")
    assert torch.allclose(out[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, -1, 8))


def test_feature_shapes_non_square(tmp_path):
    _save_tiny(tmp_path / "w.pth")
    feats = dino.DinoFeatures("tiny", tmp_path / "w.pth", device="cpu")
    frames = torch.randint(0, 255, (2, 45, 70, 3), dtype=torch.uint8)
    x = dino.preprocess(frames, (40, 64))
    assert x.shape == (2, 3, 40, 64)
    out = feats(x)
    assert out.grid == (5, 8)
    assert out.keys.shape == (2, 40, 48) and out.tokens.shape == (2, 40, 48)
    assert out.keys.dtype == torch.float32
    # keys are the k part of the last block's qkv: recompute by hand
    model = feats.model
    with torch.no_grad():
        t = model.patch_embed(x)  # [B, h, w, D]
        t = torch.cat([model.cls_token.expand(2, -1, -1), t.flatten(1, 2)], 1)
        t = t + backbones.dino_pos_embed(model.pos_embed, (5, 8))
        for blk in model.blocks[:-1]:
            t = blk(t)
        qkv = model.blocks[-1].attn.qkv(model.blocks[-1].norm1(t))
    assert torch.allclose(out.keys, qkv[:, 1:, 48:96], atol=1e-5)
    # batched == one at a time
    one = feats(x[1:2])
    assert torch.allclose(one.keys[0], out.keys[1], atol=1e-5)
    # sizes that are not patch multiples are cut down
    assert feats(dino.preprocess(frames, (43, 70))).grid == (5, 8)


def test_resnet50_official_layout(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    state = {k: v for k, v in resnet50(weights=None).state_dict().items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "dino_resnet50_pretrain.pth")
    model = backbones.create_backbone("dino_resnet50", tmp_path)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert model(torch.zeros(1, 3, 64, 48)).shape == (1, 2048)
    del state["layer4.2.bn3.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="layer4.2.bn3.weight"):
        backbones.create_backbone("dino_resnet50", tmp_path / "broken.pth")


def test_preprocess_is_the_references_input():
    """CutLER's MaskCut: ``Image.resize((480, 480), LANCZOS)``, then torchvision's ToTensor and Normalize."""
    from PIL import Image

    frames = np.random.default_rng(0).integers(0, 256, (2, 45, 70, 3), dtype=np.uint8)
    x = dino.preprocess(frames, 32)
    assert torch.equal(dino.resize_frames(frames, 32, device="cpu"), dino.resize_frames(torch.from_numpy(frames), 32))
    for frame, ours in zip(frames, x, strict=True):
        square = np.array(Image.fromarray(frame).resize((32, 32), Image.Resampling.LANCZOS))
        ref = torch.from_numpy(square).permute(2, 0, 1).float().div(255)
        ref = (ref - torch.tensor(dino.IMAGENET_MEAN)[:, None, None]) / torch.tensor(dino.IMAGENET_STD)[:, None, None]
        assert torch.equal(ours, ref)
    with pytest.raises(ValueError, match="uint8"):
        dino.preprocess(frames.astype(np.float32), 32)
