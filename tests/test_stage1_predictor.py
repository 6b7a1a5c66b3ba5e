"""The training-free path (--model none) with a tiny random DINO and a tiny random CLIP.

Random weights make the masks and names meaningless; what is tested is the plumbing: MaskCut masks
at frame size, CLIP embeddings and class probabilities per mask, vocabulary handling, and
`uvis segment --model none` writing results that load against the dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_clip import save_tiny_clip, tiny_clip_loader
from uvis.cli.main import main
from uvis.data.synthetic import make_dataset
from uvis.data.ytvis import load_dataset, load_results
from uvis.features import backbones
from uvis.features.weights import file_sha256
from uvis.pseudo.clip_model import ClipModel
from uvis.pseudo.maskcut import MaskCutConfig


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    weights = tmp_path / "tiny.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), weights)
    clip_path = save_tiny_clip(tmp_path)
    monkeypatch.setattr(ClipModel, "load", tiny_clip_loader(clip_path))
    root = tmp_path / "synth"
    make_dataset(root, num_videos=2, num_frames=5, height=40, width=48, num_objects=2, seed=1)
    common = ["--dino", "tiny", "--dino-weights", str(weights), "--clip-weights", str(clip_path),
              "--resolution", "32", "--device", "cpu",
              "--no-progress", "--no-overlay", "--score-threshold", "0"]
    return root, common


def test_segment_model_none_end_to_end(setup, tmp_path):
    root, common = setup
    out = tmp_path / "out"
    assert main(["segment", str(root), "--model", "none", "--out", str(out), *common]) == 0
    gt = load_dataset(root / "annotations.json")
    preds = load_results(out / "results.json", gt)  # category ids are the dataset's
    assert preds and {p.video_id for p in preds} <= {1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vocabulary"] == [c.name for c in gt.categories]
    assert len(list((out / "masks" / "synth_0000").glob("*.png"))) == 5
    # each video's record names the weights (sha256), so a rerun with other weights is refused
    record = json.loads(next((out / "videos").glob("*.json")).read_text())
    dino_file = tmp_path / "tiny.pth"
    assert record["settings"]["weights"]["dino"] == {"file": "tiny.pth", "sha256": file_sha256(dino_file)}
    assert record["settings"]["weights"]["clip"]["file"] == "tiny-clip.pt"
    torch.manual_seed(5)
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), dino_file)
    assert main(["segment", str(root), "--model", "none", "--out", str(out), *common]) == 2


def test_open_vocabulary_classes(setup, tmp_path):
    root, common = setup
    out = tmp_path / "out"
    assert main(["segment", str(root), "--model", "none", "--out", str(out), "--classes", "dog,skateboard",
                 "--no-png", *common]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vocabulary"] == ["dog", "skateboard"] and set(summary["classes"]) <= {"dog", "skateboard"}
    results = json.loads((out / "results.json").read_text())
    assert {r["category_id"] for r in results} <= {1, 2}


def test_frame_folder_without_classes_uses_the_starting_vocabulary(setup, tmp_path, capsys):
    """A plain folder has no categories: --model none names with configs/videos.toml's vocabulary and says so."""
    import tomllib

    from uvis.data.vocabulary import STARTING_VOCABULARY

    root, common = setup
    folder = root / "JPEGImages" / "synth_0000"
    out = tmp_path / "o"
    # with progress on (logged: not a terminal), which also prints the CPU time estimate
    assert main(["segment", str(folder), "--model", "none", "--out", str(out),
                 *[a for a in common if a != "--no-progress"]]) == 0
    err = capsys.readouterr().err
    assert "segment synth_0000: done, 5 frames in" in err
    assert "no --classes given: naming objects with the starting vocabulary of configs/videos.toml" in err
    assert json.loads((out / "summary.json").read_text())["vocabulary"] == list(STARTING_VOCABULARY)
    # one vocabulary: the file users edit and the default are the same list
    shipped = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / "videos.toml").read_text())
    assert tuple(shipped["vocabulary"]["names"]) == STARTING_VOCABULARY
    # on the CPU the command says what the backbone will cost
    assert "note: on the CPU, tiny at 32 px takes about" in err


def test_predict_interface(setup, tmp_path):
    from uvis.data.vocabulary import Vocabulary
    from uvis.predict.stage1 import Stage1Config, Stage1Predictor

    root, _ = setup
    weights = tmp_path / "tiny.pth"
    cfg = Stage1Config(backbone="tiny", dino_weights=weights,
                       maskcut=MaskCutConfig(resolution=32, num_masks=2))
    pred = Stage1Predictor.create(Vocabulary.from_names(["a", "b", "c"]), cfg, device="cpu")
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 40, 48, 3), dtype=np.uint8)
    dets = pred.predict(frames)
    assert len(dets) == 3
    for d in dets:
        assert 1 <= len(d) <= 2 and d.masks.shape[1:] == (40, 48) and d.masks.dtype == torch.bool
        assert torch.allclose(d.class_probs.sum(1), torch.ones(len(d)), atol=1e-5)
        assert torch.allclose(d.embeddings.norm(dim=1), torch.ones(len(d)), atol=1e-4)
    renamed = pred.with_vocabulary(["x", "y"])
    assert list(renamed.vocabulary) == [(1, "x"), (2, "y")] and renamed.predict(frames[:1])[0].class_probs.shape[1] == 2
    assert renamed.proposals is pred.proposals and renamed.clip is pred.clip  # the models are shared
    assert list(pred.vocabulary) == [(1, "a"), (2, "b"), (3, "c")]  # ... and the predictor it came from unchanged


def test_real_frames_smoke(setup, tmp_path):
    """Real JPEG frames (480x360) through `uvis segment --model none` with the tiny random models:
    frame-size masks, id PNGs and an overlay video come out for every frame."""

    from PIL import Image

    from uvis.data.video import open_video

    clip_dir = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-frames" / "eea827bdda"
    if not clip_dir.is_dir():
        pytest.skip(f"real frames not present at {clip_dir}")
    _, common = setup
    common = [c for c in common if c != "--no-overlay"]
    out = tmp_path / "out"
    assert main(["segment", str(clip_dir), "--model", "none", "--out", str(out), "--classes", "person,dog",
                 *common]) == 0
    n = len(list(clip_dir.glob("*.jpg")))
    pngs = sorted((out / "masks" / clip_dir.name).glob("*.png"))
    assert len(pngs) == n and np.asarray(Image.open(pngs[0])).shape == (360, 480)
    overlay = open_video(out / "overlays" / f"{clip_dir.name}.mp4")
    assert overlay.num_frames == n and (overlay.width, overlay.height) == (480, 360)
    results = json.loads((out / "results.json").read_text())
    assert results and all(len(r["segmentations"]) == n for r in results)
