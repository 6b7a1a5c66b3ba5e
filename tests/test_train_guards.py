"""Training stops cleanly on divergence, picks an autocast dtype the GPU has, and keeps a resumed run's settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train_helpers import synthetic_pseudo, tiny_config
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError
from uvis.model.loss import LossConfig, hungarian_match
from uvis.train.run_folder import CHECKPOINT, FINAL_WEIGHTS
from uvis.train.trainer import Trainer


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("guards")
    _, pseudo = synthetic_pseudo(root, num_videos=1, num_frames=4)
    return root, pseudo


def test_matching_a_diverged_prediction_does_not_crash():
    logits = torch.full((1, 5, 3), float("nan"))
    masks = torch.full((1, 5, 8, 8), float("inf"))
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.ones(2, 8, 8, dtype=torch.bool)}]
    (rows, cols), = hungarian_match(logits, masks, targets, LossConfig(num_points=16))
    assert len(rows) == len(cols) == 2


def test_a_nan_loss_stops_training_with_a_user_error_and_keeps_the_last_checkpoint(synth):
    root, pseudo = synth
    trainer = Trainer(tiny_config(root, pseudo, "run_nan", steps=8, batch_size=2, checkpoint_every=2, log_every=100),
                      progress=False)
    forward, calls = trainer.criterion.forward, []

    def diverging(outputs, targets):  # step 3's loss is NaN, so its update makes every weight NaN
        losses = forward(outputs, targets)
        calls.append(1)
        if len(calls) == 3:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    trainer.criterion.forward = diverging
    try:
        with pytest.raises(UserError, match="diverged.*by step 4.*step 2") as err:
            trainer.run()
    finally:
        trainer.close()
    assert "\n" not in str(err.value) and "lr=" in str(err.value)
    run = root / "run_nan"
    state = torch.load(run / CHECKPOINT, weights_only=False)
    assert state["step"] == 2  # the step-4 checkpoint (NaN weights) was not written over it
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (run / FINAL_WEIGHTS).exists()
    assert not (run / "metrics.jsonl").read_text().strip()  # nothing NaN logged


@pytest.mark.parametrize(("bf16", "want"), [(True, torch.bfloat16), (False, torch.float16)])
def test_autocast_uses_bf16_only_on_gpus_that_have_it(monkeypatch, bf16, want):
    from uvis.model.model import VISModel
    from uvis.predict.trained import TrainedPredictor
    from uvis.train.trainer import amp_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cuda = torch.device("cuda")
    assert amp_dtype("auto", cuda) == want
    assert amp_dtype("auto", torch.device("cpu")) is None
    model = VISModel(tiny_model_config())
    monkeypatch.setattr(model, "to", lambda *a, **k: model)  # no GPU here: only the dtype choice is tested
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the device check passes
    assert TrainedPredictor(model, Vocabulary.from_names(["object"]), (32, 48), device=cuda).amp_dtype == want


def test_predictor_runs_under_its_autocast_dtype(monkeypatch):
    from uvis.model.model import VISModel
    from uvis.predict.trained import TrainedPredictor

    predictor = TrainedPredictor(VISModel(tiny_model_config()), Vocabulary.from_names(["object"]), (32, 48), device="cpu")
    assert predictor.amp_dtype is None  # fp32 on CPU
    seen, autocast = [], torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((dtype, enabled))
        return autocast(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    predictor.amp_dtype = torch.bfloat16
    predictor.predict(np.zeros((1, 20, 30, 3), dtype=np.uint8))
    assert seen == [(torch.bfloat16, True)]


def tiny_model_config():
    from uvis.model.config import ModelConfig

    return ModelConfig.preset("tiny", 1)


def test_resume_refuses_flags_that_differ_from_the_run(synth, tmp_path, capsys):
    from uvis.cli.main import main

    root, pseudo = synth
    out = tmp_path / "run"
    base = ["train", "--data", str(root / "data"), "--pseudo", str(pseudo), "--out", str(out), "--preset", "tiny",
            "--device", "cpu", "--no-progress", "--batch-size", "2", "--workers", "0"]
    assert main([*base, "--steps", "1", "--lr", "0.001"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    for flags, named in [(["--lr", "0.01"], ["--lr 0.01 (run: 0.001)"]),
                         (["--seed", "3", "--no-clip"], ["--seed 3 (run: 0)", "--no-clip"]),
                         (["--preset", "default"], ["--preset default (run: tiny)"]),
                         (["--backbone", "tiny_vit", "--clip-weight", "1"], ["--backbone", "--clip-weight"])]:
        assert main([*base, "--steps", "2", "--resume", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(n in err[0] for n in named) and "--out" in err[0], err
    assert (out / "checkpoint.pt").read_bytes() == before  # refused before training
    # the same values, --steps (extension) and operational flags are fine
    assert main([*base, "--steps", "2", "--resume", "--lr", "1e-3", "--seed", "0", "--checkpoint-every", "5"]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2


def test_clip_autocast_follows_the_gpu(monkeypatch):
    """CLIP naming uses bf16 where the GPU has it and fp16 on older GPUs, like the other models."""
    import warnings

    from uvis.pseudo.clip_model import ClipModel

    model = object.__new__(ClipModel)
    model.device = torch.device("cuda")
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, s=supported, **k: s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no GPU here: autocast warns that it is disabled
            assert model._autocast().fast_dtype == dtype
    model.device = torch.device("cpu")
    assert not model._autocast()._enabled


def test_resume_from_the_python_api_refuses_a_changed_lr_as_the_cli_does(synth):
    """``train(config, resume=True)`` with another lr is refused (it used to be silently replaced by the run's)."""
    import dataclasses

    from uvis.train import train

    root, pseudo = synth
    config = tiny_config(root, pseudo, "run_lr", steps=1, batch_size=2, num_workers=0, lr=1e-3)
    run = train(config, progress=False)
    before = (run / CHECKPOINT).read_bytes()
    with pytest.raises(UserError) as refused:
        train(dataclasses.replace(config, lr=1e-2, seed=4, steps=2), resume=True, progress=False)
    line = str(refused.value)
    assert "\n" not in line and "lr 0.001 -> 0.01" in line and "seed 0 -> 4" in line and "config.json" in line
    assert "steps" not in line.split(" — fix: ")[0]  # extending the run is allowed
    assert (run / CHECKPOINT).read_bytes() == before  # refused before training
    # the same lr, a longer run and another device string are fine
    train(dataclasses.replace(config, steps=2, checkpoint_every=5), resume=True, progress=False)
    assert torch.load(run / CHECKPOINT, weights_only=False)["step"] == 2
