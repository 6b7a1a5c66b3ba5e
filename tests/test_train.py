import json
from pathlib import Path

import numpy as np
import pytest
import torch

from train_helpers import synthetic_pseudo, tiny_config
from uvis.cli.main import main
from uvis.data import ytvis
from uvis.data.video import read_image
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError
from uvis.evaluation import evaluate
from uvis.model import ModelConfig, VISModel
from uvis.predict.trained import TrainedPredictor
from uvis.pseudo.format import load_pseudo_labels
from uvis.track.video_tracks import tracks_by_query_index
from uvis.train import train
from uvis.train.dataset import FrameDataset, StepBatchSampler, resolve_frame_paths


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    dataset, pseudo = synthetic_pseudo(root)
    return root, dataset, pseudo


def _metrics(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _video_tracks(predictor: TrainedPredictor, dataset: ytvis.Dataset) -> list[ytvis.Track]:
    """Query q in every frame of a video = one track (the tracker is built elsewhere; see the AP test)."""
    return [t for video in dataset.videos for t in tracks_by_query_index(
        predictor.predict(np.stack([read_image(p) for p in dataset.frame_paths(video)])), video.id)]


def test_pseudo_labels_from_dataset_round_trip(synth):
    root, dataset, pseudo_path = synth
    pseudo = load_pseudo_labels(pseudo_path)
    visible = sum(s is not None for t in dataset.tracks for s in t.segmentations)
    assert len(pseudo.instances) == visible and not pseudo.categories
    assert all(i.category_id is None for i in pseudo.instances)
    paths = resolve_frame_paths(root / "data", pseudo)
    assert paths[1][0] == dataset.frame_root / dataset.videos[0].file_names[0]
    # the frame root itself works too
    assert resolve_frame_paths(dataset.frame_root, pseudo) == paths


def test_augmentation_is_reproducible_and_keeps_masks_on_objects(synth):
    root, _, pseudo_path = synth
    pseudo = load_pseudo_labels(pseudo_path)
    ds = FrameDataset.from_pseudo(pseudo, resolve_frame_paths(root / "data", pseudo), image_size=(64, 96),
                                  scale_range=(0.7, 1.4), hflip=True, seed=3)
    a, b, c = ds[(5, 0)], ds[(5, 0)], ds[(5, 1)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["masks"], b["masks"])
    assert a["image"].shape == (3, 64, 96) and a["masks"].shape[1:] == (64, 96)
    assert not torch.equal(a["image"], c["image"])  # another epoch, another augmentation
    for s in (a, c):
        img = s["image"]
        grey = (img[0] - img[1]).abs().lt(0.02) & (img[1] - img[2]).abs().lt(0.02)  # background is grey
        for m in s["masks"]:
            assert (~grey[m]).float().mean() > 0.8  # mask pixels lie on coloured object pixels


def test_padding_is_the_mean_colour_as_at_inference(synth):
    """A frame scaled below the crop is padded with the mean colour (0 after normalisation), never black."""
    from uvis.model.model import PIXEL_MEAN

    root, _, pseudo_path = synth
    pseudo = load_pseudo_labels(pseudo_path)
    ds = FrameDataset.from_pseudo(pseudo, resolve_frame_paths(root / "data", pseudo), image_size=(64, 96),
                                  scale_range=(0.5, 0.5), seed=0)
    s = ds[(0, 0)]
    assert s["image"].shape == (3, 64, 96)
    pad = s["image"][:, 40:, 60:]  # the frame fills only the top-left 32x48
    assert torch.allclose(pad, torch.tensor(PIXEL_MEAN).view(3, 1, 1).expand_as(pad))
    assert not s["masks"][:, 40:, 60:].any()


def test_copy_paste_adds_instances_with_consistent_masks(synth):
    root, _, pseudo_path = synth
    pseudo = load_pseudo_labels(pseudo_path)
    paths = resolve_frame_paths(root / "data", pseudo)
    plain = FrameDataset.from_pseudo(pseudo, paths, image_size=(64, 96), seed=0)
    pasted = FrameDataset.from_pseudo(pseudo, paths, image_size=(64, 96), copy_paste_prob=1.0, seed=0)
    more = 0
    for i in range(len(plain)):
        a, b = plain[(i, 0)], pasted[(i, 0)]
        more += len(b["masks"]) > len(a["masks"])
        assert b["masks"].sum(0).max() <= 1  # synthetic visible masks are disjoint, and pasting keeps them so
        img = b["image"]
        grey = (img[0] - img[1]).abs().lt(0.02) & (img[1] - img[2]).abs().lt(0.02)
        for m in b["masks"]:
            assert (~grey[m]).float().mean() > 0.8
        assert torch.equal(b["image"], pasted[(i, 0)]["image"])  # still reproducible
    assert more > len(plain) // 2


def test_step_sampler_splits_ranks_and_is_a_function_of_the_step():
    ranks = [StepBatchSampler(10, 2, seed=1, rank=r, world_size=2) for r in range(2)]
    for step in range(5):
        a, b = ranks[0].batch(step), ranks[1].batch(step)
        assert not {i for i, _ in a} & {i for i, _ in b}
    later = StepBatchSampler(10, 2, seed=1, rank=1, world_size=2, start_step=3)
    assert next(iter(later)) == ranks[1].batch(3)
    assert StepBatchSampler(3, 4).batch(0).__len__() == 4  # fewer frames than a batch: frames repeat


@pytest.mark.slow
def test_training_learns_the_synthetic_videos(synth):
    """Loss falls and the trained model segments its training videos.

    Threshold: video mask AP (YouTube-VIS rules, class-agnostic) >= 0.4 with queries linked across frames by
    index. The same model untrained scores ~0; 150 steps reach 0.71-0.72 here (seeds 0, 1, 2), so 0.4 leaves
    room for platform differences while still requiring masks that overlap the objects at IoU well above 0.5.
    """
    root, dataset, pseudo = synth
    run = train(tiny_config(root, pseudo, "run_ap", steps=150, log_every=10), progress=False)
    losses = [m["loss"] for m in _metrics(run)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
    assert (run / "model_final.pt").is_file() and (run / "checkpoint.pt").is_file()
    assert json.loads((run / "vocabulary.json").read_text()) == [{"id": 1, "name": "object"}]
    assert json.loads((run / "config.json").read_text())["steps"] == 150

    predictor = TrainedPredictor.from_run(run, device="cpu")
    frame = read_image(dataset.frame_paths(dataset.videos[0])[0])
    det = predictor.predict(frame)[0]
    q = predictor.model.config.num_queries
    assert det.masks.shape == (q, 64, 96) and det.masks.dtype == torch.bool
    assert det.class_probs.shape == (q, 1) and det.embeddings.shape == (q, predictor.model.config.hidden_dim)
    assert torch.allclose(det.scores, det.class_probs.max(-1).values)
    assert list(predictor.vocabulary) == [(1, "object")]

    ap = evaluate(dataset, _video_tracks(predictor, dataset), class_agnostic=True).stats["AP"]
    torch.manual_seed(0)
    untrained = TrainedPredictor(VISModel(ModelConfig.tiny()), Vocabulary.from_names(["object"]), (64, 96), "cpu")
    ap0 = evaluate(dataset, _video_tracks(untrained, dataset), class_agnostic=True).stats["AP"]
    assert ap >= 0.4, ap
    assert ap0 < 0.1, ap0


def test_resume_gives_the_same_next_losses(synth):
    root, _, pseudo = synth
    kw = {"steps": 4, "log_every": 1, "batch_size": 2}
    full = _metrics(train(tiny_config(root, pseudo, "run_full", checkpoint_every=100, **kw), progress=False))
    cfg = tiny_config(root, pseudo, "run_cut", checkpoint_every=2, **kw)
    train(cfg, progress=False, stop_after=3)  # "crash" after step 3; the last checkpoint is step 2
    assert not (root / "run_cut" / "model_final.pt").exists()
    with pytest.raises(UserError, match="already holds a checkpoint"):
        train(cfg, progress=False)
    resumed = _metrics(train(cfg, resume=True, progress=False))
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    for a, b in zip(full, resumed, strict=True):
        assert a["loss"] == b["loss"], (a, b)


def test_class_aware_training_and_predictor(tmp_path):
    dataset, pseudo = synthetic_pseudo(tmp_path, keep_categories=True, num_videos=1, num_frames=2)
    run = train(tiny_config(tmp_path, pseudo, "run", steps=2), progress=False)
    vocab = json.loads((run / "vocabulary.json").read_text())
    assert [v["name"] for v in vocab] == [c.name for c in dataset.categories]
    predictor = TrainedPredictor.from_run(run, device="cpu")
    det = predictor.predict(np.zeros((2, 50, 70, 3), dtype=np.uint8))
    assert len(det) == 2 and det[0].class_probs.shape == (10, len(vocab)) and det[0].masks.shape[1:] == (50, 70)
    # open-vocabulary hook: any head mapping query embeddings to K' + 1 logits
    head = torch.nn.Linear(predictor.model.config.hidden_dim, 4)
    assert predictor.predict(np.zeros((1, 50, 70, 3), dtype=np.uint8), class_head=head)[0].class_probs.shape == (10, 3)


def test_cli_train_and_user_errors(synth, capsys):
    root, _, pseudo = synth
    out = root / "cli_run"
    args = ["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(out), "--preset", "tiny",
            "--steps", "2", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    assert (out / "model_final.pt").is_file()
    assert main(args) == 2  # existing run without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*args[:-4], "3", "--resume", "--no-progress"]) == 0
    assert _metrics(out)[-1]["step"] == 3
    assert main(["train", "--data", str(root / "data"), "--pseudo", str(root / "missing.json"), "--out",
                 str(root / "x"), "--preset", "tiny", "--device", "cpu"]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(root / "v"), "--preset",
                 "tiny", "--device", "cpu", "--backbone", "tiny_vit", "--steps", "1", "--no-progress"]) == 0
    assert json.loads((root / "v" / "config.json").read_text())["model"]["backbone"] == "tiny_vit"
    assert main(["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(root / "w"), "--preset",
                 "tiny", "--device", "cpu", "--backbone", "vgg16", "--steps", "1"]) == 2
    assert "unknown backbone" in capsys.readouterr().err
    missing = root / "nowhere" / "dino_resnet50_pretrain.pth"
    assert main(["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(root / "y"), "--preset",
                 "tiny", "--device", "cpu", "--init", "dino", "--backbone-weights", str(missing)]) == 2
    assert "weights file not found" in capsys.readouterr().err
    with pytest.raises(UserError, match="not a training run"):
        TrainedPredictor.from_run(root / "data")


def test_resume_with_more_steps_keeps_decaying_over_the_new_total(synth):
    """Extending a finished run (--resume --steps N) must train on, not at the old schedule's zero lr."""
    root, _, pseudo = synth
    kw = {"log_every": 1, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 100}
    train(tiny_config(root, pseudo, "run_extend", steps=2, **kw), progress=False)
    lrs = {m["step"]: m["lr"] for m in _metrics(train(tiny_config(root, pseudo, "run_extend", steps=4, **kw),
                                                      resume=True, progress=False))}
    base = tiny_config(root, pseudo, "x").lr
    assert lrs[3] == pytest.approx(base * (1 - 3 / 4) ** 0.9)  # poly decay over the new total of 4 steps
    assert lrs[3] > 0


@pytest.mark.parametrize("damage", ["weights", "config", "shapes"])
def test_damaged_run_folder_is_one_line(synth, tmp_path, damage):
    """A truncated weights file, a broken config.json or weights of another model: a UserError, not a traceback."""
    import shutil

    root, _, pseudo = synth
    src = root / "run_for_damage"
    if not (src / "model_final.pt").is_file():
        train(tiny_config(root, pseudo, "run_for_damage", steps=1), progress=False)
    run = tmp_path / "run"
    shutil.copytree(src, run)
    if damage == "weights":
        (run / "model_final.pt").write_bytes((run / "model_final.pt").read_bytes()[:100])
    elif damage == "config":
        (run / "config.json").write_text("{not json")
    else:
        config = json.loads((run / "config.json").read_text())
        config["model"]["hidden_dim"] = 32
        (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="damaged"):
        TrainedPredictor.from_run(run, device="cpu")


@pytest.mark.parametrize("flag", [["--checkpoint-every", "0"], ["--lr", "-1"], ["--workers", "-1"]])
def test_cli_train_bad_numbers_are_one_line(synth, tmp_path, capsys, flag):
    root, _, pseudo = synth
    args = ["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(tmp_path / "run"),
            "--preset", "tiny", "--device", "cpu", "--steps", "1", "--no-progress", *flag]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag[0] in err[0]
    assert not (tmp_path / "run").exists()


def test_cli_resume_of_a_moved_run_folder_continues_there(synth, tmp_path):
    root, _, pseudo = synth
    base = ["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--preset", "tiny", "--device", "cpu",
            "--no-progress"]
    first, moved = tmp_path / "first", tmp_path / "moved"
    assert main([*base, "--out", str(first), "--steps", "1"]) == 0
    first.rename(moved)
    assert main([*base, "--out", str(moved), "--steps", "2", "--resume"]) == 0
    assert not first.exists()  # nothing written where the run used to be
    assert [m["step"] for m in _metrics(moved)][-1] == 2
    assert torch.load(moved / "checkpoint.pt", weights_only=False)["step"] == 2


def test_resume_after_a_torn_metrics_line(synth, tmp_path):
    """A crash in the middle of appending to metrics.jsonl must not stop the run from resuming."""
    root, _, pseudo = synth
    cfg = tiny_config(root, pseudo, str(tmp_path / "run"), steps=2, log_every=1, checkpoint_every=1)
    train(cfg, progress=False, stop_after=1)
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "lo')
    assert [m["step"] for m in _metrics(train(cfg, resume=True, progress=False))] == [1, 2]


def test_from_run_accepts_a_uvis_run_folder(synth, tmp_path):
    """README: ``Segmenter.from_run`` takes "a folder written by uvis train / uvis run" (whose model is in 3-model)."""
    import shutil

    root, _, pseudo = synth
    src = root / "run_for_damage"
    if not (src / "model_final.pt").is_file():
        train(tiny_config(root, pseudo, "run_for_damage", steps=1), progress=False)
    shutil.copytree(src, tmp_path / "pipeline_run" / "3-model")
    predictor = TrainedPredictor.from_run(tmp_path / "pipeline_run", device="cpu")
    assert list(predictor.vocabulary) == [(1, "object")]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"model": 3}'])
def test_cli_resume_with_a_damaged_config_is_one_line(synth, tmp_path, capsys, content):
    root, _, pseudo = synth
    out = tmp_path / "run"
    base = ["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--preset", "tiny", "--device", "cpu",
            "--no-progress", "--out", str(out)]
    assert main([*base, "--steps", "1"]) == 0
    (out / "config.json").write_text(content)
    capsys.readouterr()
    assert main([*base, "--steps", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "config.json" in err and "another --out" in err and "\n" not in err, err


def test_ctrl_c_finishes_the_step_saves_it_and_resumes_exactly(synth, monkeypatch):
    """A first Ctrl-C lets the step in flight finish and checkpoints it; the rerun continues as if uninterrupted."""
    import os
    import signal

    from uvis.train import trainer as trainer_mod

    root, _, pseudo = synth
    kw = {"steps": 5, "log_every": 1, "batch_size": 2, "checkpoint_every": 100}
    full = _metrics(train(tiny_config(root, pseudo, "run_full_sigint", **kw), progress=False))
    real_step = trainer_mod.Trainer.train_step

    def step_then_ctrl_c(self, images, targets):
        out = real_step(self, images, targets)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while step 3 is being finished
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", step_then_ctrl_c)
    cfg = tiny_config(root, pseudo, "run_cut_sigint", **kw)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert torch.load(root / "run_cut_sigint" / "checkpoint.pt", weights_only=False)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", real_step)
    resumed = _metrics(train(cfg, resume=True, progress=False))
    assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5]
    assert [m["loss"] for m in resumed] == [m["loss"] for m in full]


def test_train_device_names_like_the_other_commands(monkeypatch):
    from uvis.train.trainer import pick_device

    assert pick_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="unknown device='gpu'"):
        pick_device("gpu")
    with pytest.raises(UserError, match="unknown device='cuda:x'"):
        pick_device("cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(UserError, match="no GPU 'cuda:2'"):
        pick_device("cuda:2")
    with pytest.raises(UserError, match="LOCAL_RANK"):
        pick_device("cuda:1", distributed_run=True)


def test_loader_workers_ignore_ctrl_c_and_an_ignored_ctrl_c_stays_ignored(synth):
    """Workers leave Ctrl-C to the trainer (spawned workers would otherwise die mid-batch); a run started with
    Ctrl-C ignored (in the background) does not start catching it."""
    import signal

    from uvis.train import trainer as trainer_mod

    before = signal.getsignal(signal.SIGINT)
    try:
        trainer_mod._ignore_ctrl_c(0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        with trainer_mod._step_boundary_interrupts(True) as interrupted:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and not interrupted()
    finally:
        signal.signal(signal.SIGINT, before)
    root, _, pseudo = synth
    t = trainer_mod.Trainer(tiny_config(root, pseudo, "run_workers", steps=1, num_workers=1), progress=False)
    assert t._loader().worker_init_fn is trainer_mod._ignore_ctrl_c
