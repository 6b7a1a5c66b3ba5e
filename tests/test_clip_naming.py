import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tiny_clip import TINY_CFG, load_tiny_clip, save_tiny_clip
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.sources import discover, to_ytvis_video
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError, WeightsNotFoundError
from uvis.features.backbones import clip_weights_spec as weights_spec
from uvis.features.backbones import read_clip_state_dict as read_state_dict
from uvis.pseudo.clip_model import ClipConfig, ClipModel
from uvis.pseudo.format import FrameInstance, PseudoLabels, load_pseudo_labels
from uvis.pseudo.name_labels import (
    embeddings_path,
    load_embeddings,
    name_and_embed,
    name_pseudo_labels,
    save_embeddings,
)
from uvis.pseudo.naming import NamingConfig, classify
from uvis.pseudo.prototypes import PrototypeConfig
from uvis.pseudo.vocabulary import SHORT_TEMPLATES, class_embeddings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_openai_vit_b32_spec_is_the_file_open_clip_uses():
    spec = weights_spec("ViT-B-32", "openai")
    assert spec.filename == "ViT-B-32.pt"
    assert spec.url == open_clip.get_pretrained_url("ViT-B-32", "openai")
    assert spec.sha256_prefix == spec.url.split("/")[-2]  # OpenAI's URL carries the file's sha256: it is checked
    assert spec.hf_repo == "timm/vit_base_patch32_clip_224.openai"  # open_clip's copy: its cache is searched too
    laion = weights_spec("ViT-B-32", "laion2b_s34b_b79k")  # published on the HF hub only
    assert laion.url == "" and laion.hf_repo == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def test_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UVIS_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotFoundError, match="ViT-B-32.pt") as e:
        ClipModel.load(ClipConfig(download=False))
    assert "clip_weights=" in str(e.value)
    with pytest.raises(WeightsNotFoundError, match="not found"):
        ClipModel.load(ClipConfig(weights=tmp_path / "missing.pt", download=False))
    with pytest.raises(UserError, match="unknown CLIP architecture"):
        ClipModel.load(ClipConfig(model_name="ViT-Nope", weights=save_tiny_clip(tmp_path)))


@pytest.mark.parametrize("layout", ["state_dict", "wrapped", "module_prefix", "torchscript"])
def test_weights_layouts_load_identically(tmp_path, layout):
    path = save_tiny_clip(tmp_path, seed=3)
    reference = load_tiny_clip(path)
    sd = torch.load(path, weights_only=True)
    other = tmp_path / f"{layout}.pt"
    if layout == "state_dict":
        other = path
    elif layout == "wrapped":
        torch.save({"state_dict": sd, "epoch": 3}, other)
    elif layout == "module_prefix":
        torch.save({f"module.{k}": v for k, v in sd.items()}, other)
    else:  # the OpenAI release format: a TorchScript archive with (mostly) fp16 weights
        model = open_clip.model.CLIP(**TINY_CFG, quick_gelu=True)
        model.load_state_dict(sd)
        open_clip.model.convert_weights_to_lp(model)
        torch.save(model.state_dict(), tmp_path / "fp16.pt")
        reference = load_tiny_clip(tmp_path / "fp16.pt")  # same fp16-rounded numbers, plain layout
        torch.jit.script(model).save(str(other))
        stored = read_state_dict(other)
        assert set(stored) >= set(sd) and stored["visual.proj"].dtype == torch.float16
    clip = load_tiny_clip(other)
    texts = ["a photo of a dog.", "a cat"]
    assert torch.allclose(clip.encode_text(texts), reference.encode_text(texts), atol=1e-6)


def test_weights_of_another_architecture_are_a_user_error(tmp_path):
    path = save_tiny_clip(tmp_path)
    cfg = {**TINY_CFG, "embed_dim": 24}
    with pytest.raises(UserError, match="do not fit"):
        ClipModel.load(ClipConfig(model_name="tiny24", model_cfg=cfg, weights=path, device="cpu"))


def write_videos(root: Path, seed: int = 0) -> dict:
    """Two frame folders (3 frames, 40x48) with coloured rectangles; returns the masks by (video, frame)."""
    rng = np.random.default_rng(seed)
    masks = {}
    for v, name in enumerate(["alpha", "beta"], start=1):
        (root / name).mkdir(parents=True)
        for f in range(3):
            frame = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
            ms = []
            for k, colour in enumerate([(250, 30, 30), (30, 250, 30)]):
                m = np.zeros((40, 48), bool)
                m[4 + 16 * k:16 + 16 * k, 5 + f + 10 * k:25 + f + 10 * k] = True
                frame[m] = colour
                ms.append(m)
            Image.fromarray(frame).save(root / name / f"{f:05d}.png")
            masks[(v, f)] = ms
    return masks


def make_pseudo(root: Path) -> PseudoLabels:
    masks = write_videos(root)
    collection = discover(root)
    videos = [to_ytvis_video(item, item.open()) for item in collection.items]
    instances = [FrameInstance(v, f, mask_utils.encode(m), score=0.5 + 0.1 * k)
                 for (v, f), ms in sorted(masks.items()) for k, m in enumerate(ms)]
    return PseudoLabels(videos=videos, instances=instances, info={"stage": "1a"}, stats={"maskcut": {"n": 12}})


def test_end_to_end_naming_without_memory_is_plain_clip(tmp_path):
    pseudo = make_pseudo(tmp_path / "data")
    clip = load_tiny_clip(save_tiny_clip(tmp_path))
    voc = Vocabulary.from_names(["red thing", "green thing", "car"])
    cfg = NamingConfig(templates="short7", background="grey", batch_size=5)  # batches straddle frames
    named = name_and_embed(pseudo, discover(tmp_path / "data"), clip, voc, cfg, PrototypeConfig(enabled=False))
    assert len(named.labels.instances) == 12 and named.embeddings.shape == (12, clip.embed_dim)
    text = class_embeddings(clip, voc, SHORT_TEMPLATES)
    probs = classify(torch.from_numpy(named.embeddings), text, clip.logit_scale).numpy()
    for inst, p, old in zip(named.labels.instances, probs, pseudo.instances, strict=True):
        assert inst.category_id == int(p.argmax()) + 1
        assert inst.class_prob == pytest.approx(float(p.max()), abs=1e-6)
        assert inst.score == pytest.approx(old.score * inst.class_prob, abs=1e-6)
        assert inst.segmentation == old.segmentation
    assert np.allclose(np.linalg.norm(named.embeddings, axis=1), 1, atol=1e-5)
    # Embeddings are per mask: the two objects of a frame differ, the same object moves little.
    e = named.embeddings
    assert np.abs(e[0] - e[1]).max() > 1e-3
    out = tmp_path / "named.json"
    named.labels.save(out)
    loaded = load_pseudo_labels(out)
    assert [c.name for c in loaded.categories] == ["red thing", "green thing", "car"]
    assert loaded.stats["maskcut"] == {"n": 12} and loaded.stats["naming"]["masks_out"] == 12
    assert loaded.info["stage"] == "1a" and loaded.info["naming"]["naming"]["background"] == "grey"
    # what a trained model's CLIP head needs to reload this CLIP (see uvis.train.trainer.clip_info)
    assert loaded.info["naming"]["clip_pretrained"] == "openai"
    assert loaded.info["naming"]["logit_scale"] == pytest.approx(clip.logit_scale)
    save_embeddings(embeddings_path(out), named)
    by_id = load_embeddings(tmp_path / "named.embeddings.npz")
    assert sorted(by_id) == [i.id for i in loaded.instances] == list(range(1, 13))
    assert np.allclose(by_id[5], named.embeddings[4], atol=2e-3)


def test_memory_counts_add_up_and_frame_reader_works(tmp_path):
    pseudo = make_pseudo(tmp_path / "data")
    clip = load_tiny_clip(save_tiny_clip(tmp_path))
    voc = Vocabulary.from_names(["red thing", "green thing"])
    collection = discover(tmp_path / "data")
    frames = {}
    for item in collection.items:
        for i, fr in enumerate(item.open()):
            frames[(item.video_id, i)] = fr
    cfg = NamingConfig(templates="single")
    strict = PrototypeConfig(min_members=1, min_prob=0.0, reject_threshold=0.999, relabel_margin=0.0)
    named = name_pseudo_labels(pseudo, lambda v, f: frames[(v, f)], clip, voc, cfg, strict)
    s = named.stats["naming"]
    assert s["masks_in"] == 12 == s["named"] and s["masks_out"] == s["kept"] == len(named.instances)
    assert s["kept"] + s["removed"] == 12
    assert sum(c["relabelled"] for c in s["per_class"].values()) == s["relabelled"]
    assert sum(c["relabelled_in"] for c in s["per_class"].values()) == s["relabelled"]
    assert s["removed"] > 0  # a 0.999 cosine bar rejects most of these varied crops
    assert all(0 < i.class_prob <= 1 and i.score <= 0.6 for i in named.instances)
    same = name_pseudo_labels(pseudo, collection, clip, voc, cfg, strict)  # frames from the folders
    assert [(i.category_id, i.class_prob) for i in same.instances] == [(i.category_id, i.class_prob)
                                                                         for i in named.instances]


def test_cli_names_and_resumes(tmp_path, capsys, monkeypatch):
    pseudo = make_pseudo(tmp_path / "data")
    pseudo.save(tmp_path / "pseudo.json")
    weights = save_tiny_clip(tmp_path)
    # The CLI builds architectures by name: register the tiny config under a name, as a user could with
    # open_clip.add_model_config for a custom architecture.
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-test", dict(TINY_CFG))
    out = tmp_path / "out" / "named.json"
    argv = ["name", str(tmp_path / "pseudo.json"), "--data", str(tmp_path / "data"), "--out", str(out),
            "--classes", "red thing,green thing", "--clip-model", "tiny-test", "--clip-weights", str(weights),
            "--templates", "short7", "--device", "cpu"]
    assert main(argv) == 0
    assert "masks kept" in capsys.readouterr().out
    first = load_pseudo_labels(out)
    assert {c.name for c in first.categories} == {"red thing", "green thing"}
    assert all(i.category_id in (1, 2) for i in first.instances)
    assert embeddings_path(out).is_file()
    assert len(list((tmp_path / "out" / "named.parts").glob("video-*.npy"))) == 2
    # A rerun reuses the per-video CLIP results: encoding images again would fail here.
    monkeypatch.setattr(ClipModel, "encode_images", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    assert main(argv + ["--no-prototypes"]) == 0
    second = load_pseudo_labels(out)
    assert second.stats["naming"]["removed"] == 0 and len(second.instances) == 12


def test_cli_user_errors(tmp_path, capsys, monkeypatch):
    pseudo = make_pseudo(tmp_path / "data")
    pseudo.save(tmp_path / "pseudo.json")
    base = ["name", str(tmp_path / "pseudo.json"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o.json")]
    assert main(base) == 2  # plain frame folders carry no vocabulary
    assert "--classes" in capsys.readouterr().err
    assert main(base + ["--classes", "a,a"]) == 2
    assert "listed twice" in capsys.readouterr().err
    monkeypatch.delenv("UVIS_WEIGHTS_DIR", raising=False)
    assert main(base + ["--classes", "a,b", "--clip-weights", str(tmp_path / "none.pt")]) == 2
    assert "--clip-weights" in capsys.readouterr().err


def _real_clip_file() -> Path | None:
    places = [SHARED / "weights"]
    if os.environ.get("UVIS_WEIGHTS_DIR"):
        places.append(Path(os.environ["UVIS_WEIGHTS_DIR"]))
    for folder in places:
        if (folder / "ViT-B-32.pt").is_file():
            return folder / "ViT-B-32.pt"
    return None


def test_real_clip_names_a_dog():
    weights = _real_clip_file()
    if weights is None:
        pytest.skip("no real CLIP weights (ViT-B-32.pt) under ../shared/weights or $UVIS_WEIGHTS_DIR")
    seq = SHARED / "data" / "davis2016"
    if not (seq / "JPEGImages" / "480p" / "dog").is_dir():
        pytest.skip("DAVIS-2016 'dog' sequence not found under ../shared/data")
    frame = np.asarray(Image.open(seq / "JPEGImages/480p/dog/00000.jpg").convert("RGB"))
    mask = np.asarray(Image.open(seq / "Annotations/480p/dog/00000.png").convert("L")) > 127
    h, w = mask.shape
    from uvis.data.ytvis import Video

    pseudo = PseudoLabels([Video(1, w, h, ["dog/00000.jpg"], "dog")], [FrameInstance(1, 0, mask_utils.encode(mask), 1.0)])
    clip = ClipModel.load(ClipConfig(weights=weights, download=False))
    voc = Vocabulary.from_names(["dog", "car", "person", "horse", "bicycle", "airplane"])
    named = name_pseudo_labels(pseudo, lambda v, f: frame, clip, voc, NamingConfig(), PrototypeConfig(enabled=False))
    assert named.instances[0].category_id == 1 and named.instances[0].class_prob > 0.5


@pytest.mark.parametrize("device", ["gpu", "cuda:x"])
def test_unknown_device_is_a_user_error(tmp_path, device):
    path = save_tiny_clip(tmp_path)
    with pytest.raises(UserError, match="device"):
        ClipModel.load(ClipConfig(model_name="tiny", model_cfg=TINY_CFG, weights=path, device=device))


def test_damaged_embeddings_file_is_a_user_error(tmp_path):
    """A truncated copy of NAME.embeddings.npz, or one whose arrays disagree, is one line naming the file."""
    good = tmp_path / "good.npz"
    np.savez(good, ids=np.arange(3), embeddings=np.zeros((3, 4), np.float16))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:100])
    np.savez(tmp_path / "odd.npz", ids=np.arange(2), embeddings=np.zeros((3, 4), np.float16))
    for name in ("cut.npz", "odd.npz"):
        with pytest.raises(UserError, match="cannot read CLIP embeddings") as err:
            load_embeddings(tmp_path / name)
        assert name in str(err.value)
    assert sorted(load_embeddings(good)) == [0, 1, 2]
