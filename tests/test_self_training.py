"""Self-training: a trained model's confident predictions become the next round's pseudo-labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train_helpers import synthetic_pseudo, tiny_config
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.predict.self_training import SelfTrainingConfig, select_predictions, self_train_collection
from uvis.predict.trained import TrainedPredictor
from uvis.predict.types import FrameDetections
from uvis.pseudo.format import load_pseudo_labels
from uvis.train import train


def _box(h, w, y0, y1, x0, x1):
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def test_select_keeps_confident_non_empty_non_duplicate_masks():
    a = _box(20, 30, 2, 12, 2, 12)  # 100 px
    b = _box(20, 30, 2, 12, 3, 12)  # 90 px inside a: IoU 0.9 -> duplicate of a
    c = _box(20, 30, 2, 12, 4, 12)  # 80 px inside a: IoU 0.8 -> not above the threshold, kept
    d = _box(20, 30, 14, 18, 20, 28)
    empty = torch.zeros(20, 30, dtype=torch.bool)
    masks = torch.stack([b, a, d, empty, c, d])
    scores = torch.tensor([0.8, 0.9, 0.4, 0.99, 0.6, 0.7])
    probs = torch.tensor([[0.8, 0.1], [0.05, 0.9], [0.4, 0.3], [0.99, 0.0], [0.6, 0.2], [0.1, 0.7]])
    dets = FrameDetections(embeddings=torch.zeros(6, 4), class_probs=probs, scores=scores, masks=masks)
    kept = select_predictions(dets, [5, 7], SelfTrainingConfig(min_score=0.5))
    # highest score first: a (0.9), [b dropped: IoU 0.9 with a], d#5 (0.7), c (0.6); d#2 is below min-score
    assert [round(k.score, 2) for k in kept] == [0.9, 0.7, 0.6]
    assert [k.category_id for k in kept] == [7, 7, 5]
    assert [round(k.class_prob, 2) for k in kept] == [0.9, 0.7, 0.6]
    assert np.array_equal(mask_utils.decode(kept[0].rle), a.numpy())
    assert np.array_equal(mask_utils.decode(kept[2].rle), c.numpy())
    strict = select_predictions(dets, [5, 7], SelfTrainingConfig(min_score=0.5, max_overlap=0.5))
    assert [round(k.score, 2) for k in strict] == [0.9, 0.7]
    assert select_predictions(dets, [5, 7], SelfTrainingConfig(min_score=1.0)) == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("self_training")
    _, pseudo = synthetic_pseudo(root, keep_categories=True, num_videos=2, num_frames=3)
    run = train(tiny_config(root, pseudo, "round1", steps=4), progress=False)
    return root, run


def test_cli_model_round_and_next_training_round(trained, capsys):
    root, run = trained
    out = root / "round2-labels"
    args = ["pseudo-label", str(root / "data"), "--out", str(out), "--model", str(run), "--min-score", "0",
            "--device", "cpu", "--batch-size", "2", "--no-progress"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["1.json", "2.json"]
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    vocab = json.loads((run / "vocabulary.json").read_text())
    assert [(c.id, c.name) for c in labels.categories] == [(v["id"], v["name"]) for v in vocab]
    assert labels.info["config"]["stage"] == "self-training" and labels.stats["self-training"]["frames"] == 6
    assert labels.instances
    ids = {v["id"] for v in vocab}
    for inst in labels.instances:
        assert inst.category_id in ids and inst.class_prob == pytest.approx(inst.score)
        assert mask_utils.area(inst.segmentation) > 0
    for group in labels.by_frame().values():  # no two kept masks of a frame overlap by more than IoU 0.8
        m = np.stack([mask_utils.decode(i.segmentation) for i in group]).reshape(len(group), -1).astype(float)
        inter = m @ m.T
        iou = inter / (m.sum(1)[:, None] + m.sum(1)[None] - inter)
        assert (iou[~np.eye(len(group), dtype=bool)] <= 0.8).all()
    # the same predictions as the predictor gives (score order inside a frame)
    first = TrainedPredictor.from_run(run, "cpu").predict(
        np.stack([f for f in discover(root / "data").items[0].open()][:1]))[0]
    top = [i for i in labels.instances if i.video_id == 1 and i.frame_index == 0][0]
    assert top.score == pytest.approx(float(first.scores[first.masks.flatten(1).any(1)].max()), abs=1e-6)
    # the next round trains on it (class-aware over the run's classes)
    assert main(["train", "--data", str(root / "data"), "--pseudo", str(out / "pseudo_labels.json"), "--out",
                 str(root / "round2"), "--preset", "tiny", "--steps", "2", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((root / "round2" / "vocabulary.json").read_text()) == vocab
    assert (root / "round2" / "model_final.pt").is_file()
    # other settings in the same folder are refused; --name does not apply to a model's labels
    capsys.readouterr()
    assert main([*args[:7], "0.9", *args[8:]]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main([*args, "--name"]) == 2


def test_resume_and_shards(trained, monkeypatch):
    root, run = trained
    calls = []
    real = TrainedPredictor.predict

    def counting(self, frames, **kw):
        calls.append(len(frames))
        return real(self, frames, **kw)

    monkeypatch.setattr(TrainedPredictor, "predict", counting)
    collection = discover(root / "data")
    out = root / "resume"
    cfg = SelfTrainingConfig(min_score=0.0)
    assert not self_train_collection(collection, out, run, cfg, device="cpu", shard=(0, 2), progress=False).exists()
    assert sum(calls) == 3 and (out / "videos" / "1.json").is_file()
    merged = self_train_collection(collection, out, run, cfg, device="cpu", shard=(1, 2), progress=False)
    assert sum(calls) == 6 and merged.is_file()
    first = json.loads(merged.read_text())["annotations"]
    (out / "videos" / "2.json").unlink()  # as if interrupted during video 2
    merged.unlink()
    calls.clear()
    self_train_collection(collection, out, run, cfg, device="cpu", progress=False)
    assert sum(calls) == 3
    assert json.loads(merged.read_text())["annotations"] == first


def test_bad_min_score_and_missing_run(trained, tmp_path, capsys):
    root, run = trained
    base = ["pseudo-label", str(root / "data"), "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress"]
    assert main([*base, "--model", str(run), "--min-score", "1.5"]) == 2
    assert "--min-score" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path / "nothing")]) == 2
    assert "training run" in capsys.readouterr().err
