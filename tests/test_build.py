"""``build_predictor`` / ``build_segmenter``: the one factory of the CLI, the pipeline and the Python API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import uvis
from uvis.cli.main import main
from uvis.data.synthetic import make_dataset
from uvis.errors import UserError
from uvis.model import ModelConfig, VISModel
from uvis.predict.build import build_predictor
from uvis.predict.stage1 import Stage1Predictor
from uvis.predict.trained import TrainedPredictor
from uvis.track.tracker import TrackerConfig

CLASSES = ["disc", "ring", "square"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder in the layout of ``uvis train`` with an untrained tiny model over three classes."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(num_classes=len(CLASSES))
    (run / "config.json").write_text(json.dumps({"model": cfg.to_json(), "image_size": [32, 48]}))
    (run / "vocabulary.json").write_text(json.dumps([{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]))
    torch.save({"model": VISModel(cfg).state_dict()}, run / "model_final.pt")
    return run


def test_classes_file_with_a_trained_model_is_read(run_dir, tmp_path):
    listed = tmp_path / "classes.txt"
    listed.write_text("square\ndisc\n")
    for spec in (str(listed), listed, "square,disc", ["square", "disc"]):
        predictor = build_predictor(run_dir, classes=spec, device="cpu")
        assert isinstance(predictor, TrainedPredictor)
        assert list(predictor.vocabulary) == [(3, "square"), (1, "disc")], spec  # trained ids kept
        dets = predictor.predict(np.zeros((2, 32, 48, 3), np.uint8))
        assert dets[0].class_probs.shape[1] == 2
    from uvis.track.segmenter import Segmenter

    for spec in (str(listed), listed, "square,disc"):  # the Segmenter itself reads a spec, never its letters
        assert list(Segmenter(build_predictor(run_dir, device="cpu"), classes=spec).vocabulary.names) == ["square", "disc"]
    with pytest.raises(UserError, match="not in the model's vocabulary"):
        build_predictor(run_dir, classes="zebra", device="cpu")
    with pytest.raises(UserError, match="class list file not found"):
        build_predictor(run_dir, classes=tmp_path / "missing.txt", device="cpu")


def test_segment_cli_reads_a_classes_file_with_a_trained_model(run_dir, tmp_path):
    make_dataset(tmp_path / "d", num_videos=1, num_frames=3, height=32, width=48, seed=0)
    listed = tmp_path / "names.txt"
    listed.write_text("ring\nsquare\n")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "d"), "--model", str(run_dir), "--out", str(out), "--classes", str(listed),
                 "--device", "cpu", "--no-progress", "--no-overlay", "--no-png"]) == 0
    assert json.loads((out / "summary.json").read_text())["vocabulary"] == ["ring", "square"]


def test_with_vocabulary_gives_a_new_predictor_sharing_the_model(run_dir):
    base = build_predictor(run_dir, device="cpu")
    seg = uvis.build_segmenter(run_dir, device="cpu", tracker=TrackerConfig(score_threshold=0.3), top_k=4)
    restricted = base.with_vocabulary(["ring"])
    assert list(base.vocabulary) == [(1, "disc"), (2, "ring"), (3, "square")]  # unchanged
    assert list(restricted.vocabulary) == [(2, "ring")] and restricted.model is base.model
    assert restricted.fingerprint() == base.fingerprint() and base.fingerprint()["file"] == "model_final.pt"
    assert seg.top_k == 4 and seg.predictor.min_score == 0.2 and base.min_score is None


def test_training_free_without_weights_is_the_weights_free_mode(tmp_path):
    said: list[str] = []
    seg = uvis.build_segmenter("none", features="auto", device="cpu", say=said.append)
    assert isinstance(seg.predictor, Stage1Predictor) and seg.predictor.temporal
    assert list(seg.vocabulary) == [(1, "object")] and seg.predictor.fingerprint() == {}
    assert any("weights-free motion features" in s for s in said) and any("named 'object'" in s for s in said)
    with pytest.raises(UserError, match="CLIP"):  # names need CLIP
        build_predictor("none", features="motion", classes="dog", say=said.append)
    with pytest.raises(UserError, match="unknown weights role"):
        build_predictor("none", weights={"dinov2": "x.pth"})
    with pytest.raises(UserError, match="unknown stage-1 features"):
        build_predictor("none", features="sift")
