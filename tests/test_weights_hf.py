"""Weights from a Hugging Face cache laid out exactly as huggingface_hub lays it out, used offline
(``HF_HUB_OFFLINE=1``, set for every test in conftest.py): timm's DINO copies (safetensors), the transformers
layout of ``facebook/dino-*`` (converted), open_clip's ``hf-hub:`` names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tiny_clip import TINY_CFG, load_tiny_clip, save_tiny_clip
from uvis.cli.main import main
from uvis.errors import UserError, WeightsNotFoundError
from uvis.features import backbones, weights
from uvis.features.backbones import clip_architecture as architecture_of
from uvis.features.backbones import clip_weights_spec as weights_spec
from uvis.pseudo.clip_model import clip_need

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hf_cache_file(repo: str, filename: str, data: bytes, commit: str = COMMIT) -> Path:
    """Put ``data`` in the Hugging Face cache as huggingface_hub does: a blob named by its sha256, a snapshot
    folder per commit with a relative symlink to the blob, and ``refs/main`` holding the commit."""
    root = weights.hf_cache_dir() / f"models--{repo.replace('/', '--')}"
    blob = root / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = root / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..", "..", "blobs", blob.name))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return link


def _tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])).items()}


def _safetensors_bytes(state: dict[str, torch.Tensor], tmp_path: Path) -> bytes:
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    return path.read_bytes()


def _to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors as transformers' ViTModel names them (written out here, independently of uvis)."""
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"],
           "pooler.dense.weight": torch.zeros(48, 48), "pooler.dense.bias": torch.zeros(48)}
    for i in range(2):
        b, e = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = state[f"{b}attn.qkv.{kind}"].chunk(3)
            out |= {f"{e}attention.attention.query.{kind}": q.contiguous(),
                    f"{e}attention.attention.key.{kind}": k.contiguous(),
                    f"{e}attention.attention.value.{kind}": v.contiguous(),
                    f"{e}attention.output.dense.{kind}": state[f"{b}attn.proj.{kind}"],
                    f"{e}layernorm_before.{kind}": state[f"{b}norm1.{kind}"],
                    f"{e}layernorm_after.{kind}": state[f"{b}norm2.{kind}"],
                    f"{e}intermediate.dense.{kind}": state[f"{b}mlp.fc1.{kind}"],
                    f"{e}output.dense.{kind}": state[f"{b}mlp.fc2.{kind}"]}
    return out


def _same(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        assert torch.equal(own[k], v), k


def test_timm_names_resolve_from_the_offline_hugging_face_cache(tmp_path):
    state = _tiny_state(seed=1)
    link = hf_cache_file("timm/vit_tiny_test_patch8_32.dino", "model.safetensors", _safetensors_bytes(state, tmp_path))
    for name in ("vit_tiny_test_patch8_32.dino", "timm/vit_tiny_test_patch8_32.dino",
                 "hf-hub:timm/vit_tiny_test_patch8_32.dino"):
        model = backbones.create_backbone(name, True)
        _same(model, state)
        assert model.weights_path == link
    # uvis's own name finds timm's copy in the Hugging Face cache too (after $UVIS_WEIGHTS_DIR and torch's cache)
    assert backbones.create_backbone("tiny", True).weights_path == link
    # a safetensors file is accepted wherever a .pth is, under any name
    (tmp_path / "mine.bin").write_bytes(link.read_bytes())
    _same(backbones.create_backbone("tiny", tmp_path / "mine.bin"), state)


def test_real_timm_and_hugging_face_names_map_to_the_dino_architectures():
    arch, spec = backbones.vit_spec("vit_base_patch8_224.dino")
    assert arch.name == "dino_vitb8" and spec.hf_repo == "timm/vit_base_patch8_224.dino" and spec.url == ""
    assert spec.hf_files[0] == "model.safetensors"
    arch, spec = backbones.vit_spec("facebook/dino-vits16")
    assert arch.name == "dino_vits16" and spec.hf_repo == "facebook/dino-vits16"
    assert backbones.vit_spec("dino_vits8")[1].hf_repo == "timm/vit_small_patch8_224.dino"
    with pytest.raises(UserError, match="unknown backbone") as err:
        backbones.vit_spec("vit_huge_patch14_224.dino")
    assert "tiny" not in str(err.value) and "dino_vitb8" in str(err.value)


def test_transformers_layout_is_converted_exactly(tmp_path):
    state = _tiny_state(seed=2)
    hf = _to_transformers(state)
    converted = backbones.from_transformers(hf)
    assert set(converted) == set(state)
    for k, v in state.items():
        assert torch.equal(converted[k], v), k
    # through the Hugging Face cache, as a .bin saved by torch (and with a model prefix)
    torch.save({f"vit.{k}": v for k, v in hf.items()}, tmp_path / "pytorch_model.bin")
    hf_cache_file("uvis-tests/dino-tiny", "pytorch_model.bin", (tmp_path / "pytorch_model.bin").read_bytes())
    model = backbones.create_backbone("uvis-tests/dino-tiny", True)
    _same(model, state)
    x = torch.randn(1, 3, 32, 48)
    reference = backbones.build_vit(backbones.VITS["tiny"])
    reference.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), reference.eval().forward_features(x), atol=1e-6)


def test_offline_without_the_file_says_so(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE is set") as err:
        backbones.create_backbone("vit_tiny_test_patch8_32.dino", True)
    assert str(weights.hf_cache_dir()) in str(err.value) and "uvis weights download" in str(err.value)


def test_open_clip_hf_hub_names(tmp_path):
    assert architecture_of("hf-hub:timm/vit_base_patch32_clip_224.openai", "ignored") == ("ViT-B-32", "openai")
    with pytest.raises(UserError, match="not in open_clip's table"):
        architecture_of("hf-hub:someone/unknown-clip", "openai")
    spec = weights_spec("hf-hub:timm/vit_base_patch32_clip_224.openai", "openai")
    assert spec.hf_repo == "timm/vit_base_patch32_clip_224.openai" and spec.url == ""
    # found in the offline cache (open_clip's safetensors file), and a safetensors CLIP loads
    src = save_tiny_clip(tmp_path)
    tensors = {k: v.contiguous() for k, v in torch.load(src, weights_only=True).items()}
    save_file(tensors, str(tmp_path / "open_clip_model.safetensors"))
    link = hf_cache_file("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors",
                         (tmp_path / "open_clip_model.safetensors").read_bytes())
    assert weights.find_local(clip_need_spec()) == link
    texts = ["a dog"]
    assert torch.allclose(load_tiny_clip(link).encode_text(texts), load_tiny_clip(src).encode_text(texts), atol=1e-6)
    assert TINY_CFG["embed_dim"] == 16


def clip_need_spec() -> weights.WeightsSpec:
    from uvis.pseudo.clip_model import ClipConfig

    return clip_need(ClipConfig(model_name="hf-hub:timm/vit_base_patch32_clip_224.openai")).spec


def test_backbone_help_lists_only_real_backbones(capsys):
    with pytest.raises(SystemExit):
        main(["pseudo-label", "--help"])
    text = capsys.readouterr().out
    assert "dino_vitb8" in text and "vit_base_patch8_224.dino" in text and "facebook/dino-vitb8" in text
    assert "tiny" not in text


def test_a_download_from_the_hub_is_loaded_before_it_is_used_and_a_bad_one_deleted(tmp_path, monkeypatch):
    """Online (HF_HUB_OFFLINE unset) the file comes from ``hf_hub_download``; here a stand-in for the network
    puts files into the cache as huggingface_hub does."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    served = {"pytorch_model.bin": b"not a checkpoint at all"}
    calls = []

    def fake_download(repo, filename, **kwargs):
        calls.append((repo, filename))
        if filename not in served:
            raise EntryNotFoundError(f"{filename} not in {repo}")
        return str(hf_cache_file(repo, filename, served[filename]))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(WeightsNotFoundError, match=r"not the expected weights \(.*cannot read weights.*it was deleted"):
        backbones.create_backbone("vit_tiny_test_patch8_32.dino", True)
    assert calls == [("timm/vit_tiny_test_patch8_32.dino", "model.safetensors"),
                     ("timm/vit_tiny_test_patch8_32.dino", "pytorch_model.bin")]
    root = weights.hf_cache_dir() / "models--timm--vit_tiny_test_patch8_32.dino"
    assert not list((root / "blobs").iterdir()) and not list((root / "snapshots").rglob("*.bin"))
    state = _tiny_state(seed=3)
    served["model.safetensors"] = _safetensors_bytes(state, tmp_path)
    _same(backbones.create_backbone("vit_tiny_test_patch8_32.dino", True), state)
