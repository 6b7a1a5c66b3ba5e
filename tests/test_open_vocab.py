"""Open-vocabulary inference for trained models: a CLIP head distilled from the pseudo-labels' CLIP embeddings.

The "CLIP embeddings" here are a fixed random unit vector per synthetic category, so the right answer is
known by construction: a query on a disc must project next to the disc vector.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_clip import TINY_CFG, patch_clip_load
from train_helpers import synthetic_pseudo, tiny_config
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.video import read_image
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError
from uvis.predict.trained import TrainedPredictor
from uvis.pseudo.format import load_pseudo_labels
from uvis.pseudo.name_labels import embeddings_path
from uvis.train import train
from uvis.train.dataset import FrameDataset, resolve_frame_paths

DIM = TINY_CFG["embed_dim"]  # the tiny CLIP's embedding size, so the CLI test can use that CLIP


def _category_vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(0).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A tiny model trained 60 steps on ground-truth pseudo-labels with per-category "CLIP embeddings"."""
    root = tmp_path_factory.mktemp("openvocab")
    dataset, pseudo_path = synthetic_pseudo(root, keep_categories=True)
    pseudo = load_pseudo_labels(pseudo_path)
    vectors = _category_vectors(len(dataset.categories))
    index = {c.id: i for i, c in enumerate(dataset.categories)}
    np.savez(embeddings_path(pseudo_path), ids=np.array([i.id for i in pseudo.instances]),
             embeddings=np.stack([vectors[index[i.category_id]] for i in pseudo.instances]).astype(np.float16))
    run = train(tiny_config(root, pseudo_path, "run", steps=60, log_every=5), progress=False)
    return root, dataset, pseudo_path, vectors, run


def test_dataset_carries_clip_rows_through_copy_paste(distilled):
    root, dataset, pseudo_path, vectors, _ = distilled
    pseudo = load_pseudo_labels(pseudo_path)
    index = {c.id: i for i, c in enumerate(dataset.categories)}
    emb = {i.id: vectors[index[i.category_id]] for i in pseudo.instances}
    ds = FrameDataset.from_pseudo(pseudo, resolve_frame_paths(root / "data", pseudo), image_size=(64, 96),
                                  copy_paste_prob=1.0, hflip=True, embeddings=emb)
    assert ds.clip_dim == DIM
    for k in range(4):
        item = ds[k, 0]
        assert item["clip"].shape == (len(item["labels"]), DIM)
        # every row is still its own instance's category vector after crop, flip, paste and the area filter
        assert torch.allclose(item["clip"], torch.from_numpy(vectors)[item["labels"]])


def test_training_distils_the_clip_embeddings(distilled):
    root, _, pseudo_path, _, run = distilled
    metrics = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    clip_losses = [m["loss_clip"] for m in metrics]
    assert np.mean(clip_losses[-2:]) < 0.25 * np.mean(clip_losses[:2]), clip_losses
    assert json.loads((run / "config.json").read_text())["model"]["clip_dim"] == DIM
    info = json.loads((run / "clip.json").read_text())
    assert info["dim"] == DIM and info["model_name"] == "ViT-B-32" and info["logit_scale"] > 0
    # a resumed run rebuilds the head from the same file
    cfg = tiny_config(root, pseudo_path, "run_resume", steps=3, checkpoint_every=1)
    train(cfg, progress=False, stop_after=2)
    resumed = [json.loads(ln) for ln in (train(cfg, resume=True, progress=False) / "metrics.jsonl")
               .read_text().splitlines()]
    assert resumed[-1]["step"] == 3 and "loss_clip" in resumed[-1]


def test_open_vocabulary_classification_recovers_the_categories(distilled):
    """Text embeddings = the category vectors, in another order than training's classes: the argmax over the
    names must name the object under each query (chance: 1 in 5; 0.86-0.90 here with seeds 0-2)."""
    _, dataset, _, vectors, run = distilled
    predictor = TrainedPredictor.from_run(run, device="cpu")
    assert predictor.open_vocabulary
    order = [3, 0, 4, 1, 2]
    names = [f"word{i}" for i in order]  # names CLIP never saw in training; only the vectors matter
    predictor = predictor.with_text_embeddings(names, torch.from_numpy(vectors[order]), logit_scale=50.0)
    assert list(predictor.vocabulary) == [(i + 1, n) for i, n in enumerate(names)]
    index = {c.id: i for i, c in enumerate(dataset.categories)}
    right = total = 0
    for video in dataset.videos:
        dets = predictor.predict(np.stack([read_image(p) for p in dataset.frame_paths(video)]))
        for track in (t for t in dataset.tracks if t.video_id == video.id):
            for t, seg in enumerate(track.segmentations):
                if seg is None:
                    continue
                gt = torch.from_numpy(mask_utils.decode(seg))
                iou = (dets[t].masks & gt).flatten(1).sum(1) / (dets[t].masks | gt).flatten(1).sum(1).clamp(min=1)
                q = int(iou.argmax())
                if iou[q] < 0.5:
                    continue
                total += 1
                right += order[int(dets[t].class_probs[q].argmax())] == index[track.category_id]
        det = dets[0]
        assert det.class_probs.shape == (predictor.model.config.num_queries, len(names))
        assert torch.allclose(det.scores, det.class_probs.max(-1).values)
    assert total >= 15 and right / total >= 0.7, (right, total)


def test_segment_cli_takes_any_names_with_the_head(distilled, tmp_path, monkeypatch):
    root, _, _, _, run = distilled
    patch_clip_load(monkeypatch, tmp_path)
    out = tmp_path / "out"
    args = ["segment", str(root / "data"), "--model", str(run), "--out", str(out), "--device", "cpu",
            "--no-progress", "--no-overlay", "--no-png", "--score-threshold", "0", "--classes", "zebra,skateboard"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vocabulary"] == ["zebra", "skateboard"]
    results = json.loads((out / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2}


def test_without_the_head_unknown_names_are_a_user_error(tmp_path, capsys):
    _, pseudo = synthetic_pseudo(tmp_path, keep_categories=True, num_videos=1, num_frames=2)
    np.savez(embeddings_path(pseudo), ids=np.array([1]), embeddings=np.ones((1, DIM), np.float16))
    run = train(tiny_config(tmp_path, pseudo, "run", steps=1, clip_distill=False), progress=False)
    assert not (run / "clip.json").exists()
    predictor = TrainedPredictor.from_run(run, device="cpu")
    assert not predictor.open_vocabulary
    predictor = predictor.with_vocabulary(["ring", "disc"])  # known names: restricted, trained ids kept
    assert [n for _, n in predictor.vocabulary] == ["ring", "disc"]
    assert predictor.predict(np.zeros((16, 24, 3), np.uint8))[0].class_probs.shape[1] == 2
    with pytest.raises(UserError, match="no CLIP head"):
        predictor.with_text_embeddings(["a"], torch.ones(1, DIM))
    capsys.readouterr()
    code = main(["segment", str(tmp_path / "data"), "--model", str(run), "--out", str(tmp_path / "o"), "--device",
                 "cpu", "--no-progress", "--classes", "zebra"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "zebra" in err and "retrain" in err, err


def test_embeddings_file_used_by_default_and_resume_needs_it(tmp_path):
    """``uvis train`` picks the file up by default; a resumed run keeps the head (or no head) it started with."""
    _, pseudo = synthetic_pseudo(tmp_path, keep_categories=True, num_videos=1, num_frames=2)
    np.savez(embeddings_path(pseudo), ids=np.array([1, 2]), embeddings=np.eye(2, DIM, dtype=np.float16))
    assert main(["train", "--data", str(tmp_path / "data"), "--pseudo", str(pseudo), "--out", str(tmp_path / "r"),
                 "--preset", "tiny", "--steps", "2", "--device", "cpu", "--no-progress", "--checkpoint-every", "1"]) == 0
    assert json.loads((tmp_path / "r" / "clip.json").read_text())["dim"] == DIM
    Path(embeddings_path(pseudo)).unlink()
    cfg = tiny_config(tmp_path, pseudo, "r", steps=3)
    with pytest.raises(UserError, match="trained with CLIP embeddings"):
        train(cfg, resume=True, progress=False)
    # a run started without the file keeps no head when resumed after the file appeared (its checkpoint fits)
    plain = tiny_config(tmp_path, pseudo, "plain", steps=2, checkpoint_every=1)
    train(plain, progress=False, stop_after=1)
    np.savez(embeddings_path(pseudo), ids=np.array([1, 2]), embeddings=np.eye(2, DIM, dtype=np.float16))
    train(plain, resume=True, progress=False)
    assert not (tmp_path / "plain" / "clip.json").exists()
    assert TrainedPredictor.from_run(tmp_path / "plain", device="cpu").open_vocabulary is False


def test_clip_info_comes_from_the_naming_settings(tmp_path):
    from uvis.pseudo.format import PseudoLabels
    from uvis.train.trainer import clip_info

    named = PseudoLabels(videos=[], instances=[], info={"naming": {
        "clip_model": "ViT-B-16", "clip_pretrained": "laion2b_s34b_b88k", "clip_weights": "/w/x.bin",
        "logit_scale": 50.0, "naming": {"templates": "short7"}}})
    info = clip_info(named, tmp_path / "e.npz", 512)
    assert (info["model_name"], info["pretrained_tag"], info["weights"], info["templates"], info["logit_scale"],
            info["dim"]) == ("ViT-B-16", "laion2b_s34b_b88k", "/w/x.bin", "short7", 50.0, 512)
    old = clip_info(PseudoLabels(videos=[], instances=[]), tmp_path / "e.npz", 512)  # files from before
    assert (old["model_name"], old["pretrained_tag"], old["logit_scale"]) == ("ViT-B-32", "openai", 100.0)
    from uvis.model import ModelConfig, VISModel

    predictor = TrainedPredictor(VISModel(ModelConfig.tiny()), Vocabulary.from_names(["object"]), (64, 96), "cpu",
                                 clip_info=info)
    cfg = predictor.clip_config()
    assert (cfg.model_name, cfg.pretrained_tag, cfg.weights) == ("ViT-B-16", "laion2b_s34b_b88k", None)  # moved
    predictor.clip_weights = tmp_path
    assert predictor.clip_config().weights == tmp_path


def test_min_score_keeps_exactly_the_confident_queries(distilled):
    """Skipping low-score queries before mask upsampling changes nothing for the queries kept."""
    from uvis.track.segmenter import Segmenter
    from uvis.track.tracker import TrackerConfig

    root, dataset, _, _, run = distilled
    predictor = TrainedPredictor.from_run(run, device="cpu")
    video = dataset.videos[0]
    frames = np.stack([read_image(root / "data" / "JPEGImages" / f) for f in video.file_names[:2]])
    full = predictor.predict(frames)
    threshold = float(full[0].scores.median())
    predictor.min_score = threshold
    part = predictor.predict(frames)
    for a, b in zip(full, part, strict=True):
        keep = a.scores >= threshold
        assert len(b) == int(keep.sum())
        assert torch.equal(a.masks[keep], b.masks) and torch.equal(a.scores[keep], b.scores)
        assert torch.equal(a.embeddings[keep], b.embeddings) and torch.equal(a.class_probs[keep], b.class_probs)
    predictor.min_score = 2.0  # nothing passes: empty detections, no error
    assert all(len(d) == 0 and d.masks.shape[1:] == frames.shape[1:3] for d in predictor.predict(frames))
    seg = Segmenter(predictor, tracker_config=TrackerConfig(score_threshold=0.3, continue_threshold=0.2))
    assert seg.predictor.min_score == 0.2  # the lowest score the tracker still uses
    assert predictor.min_score == 2.0 and seg.predictor.model is predictor.model  # its own copy, the same model
