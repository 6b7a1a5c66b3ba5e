"""``uvis run``: every step wired together, skipped when complete, resumed after an interruption.

Stage 1 runs with a tiny random DINO and a tiny random CLIP (no real weights exist offline), so the
masks and names are meaningless; what is tested is the plumbing between the steps and the run folder.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tiny_clip import patch_clip_load
from uvis.cli.main import main
from uvis.data.synthetic import SYNTHETIC_CLASSES, make_dataset
from uvis.errors import UserError
from uvis.features import backbones
from uvis.pipeline import RunConfig, run_pipeline, step_settings
from uvis.track.segmenter import Segmenter


@pytest.fixture()
def sample(tmp_path):
    root = tmp_path / "synth"
    make_dataset(root, num_videos=2, num_frames=4, height=40, width=48, num_objects=2, seed=3)
    return root


@pytest.fixture()
def tiny_weights(tmp_path, monkeypatch):
    dino_path = tmp_path / "tiny_dino.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), dino_path)
    patch_clip_load(monkeypatch, tmp_path)
    return dino_path


def _config(sample, out, **kw) -> RunConfig:
    base = dict(data=str(sample), out=str(out), device="cpu", progress=False, train_preset="tiny", train_steps=6,
                segment_batch_size=2)
    base.update(kw)
    return RunConfig(**base)


def _interrupt_second_video(monkeypatch):
    """Make Segmenter.segment raise KeyboardInterrupt (Ctrl-C) on the second video; returns the real method."""
    original = Segmenter.segment
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C while the second video is being segmented
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "segment", interrupted)
    return original


def test_full_pipeline_with_stage1_writes_every_step(sample, tmp_path, tiny_weights):
    out = tmp_path / "run"
    config = _config(sample, out, backbone="tiny", dino_weights=str(tiny_weights), resolution=32,
                     classes=list(SYNTHETIC_CLASSES), ablations=["no-prototypes", "no-track-memory"])
    run_pipeline(config, log=lambda s: None)
    for step in ("1-pseudo-labels", "2-named", "3-model", "4-segment"):
        marker = json.loads((out / step / "step.json").read_text())
        assert marker["settings"]["backbone"] == "tiny"
    named = json.loads((out / "2-named" / "pseudo_labels.json").read_text())
    assert [c["name"] for c in named["categories"]] == list(SYNTHETIC_CLASSES)
    assert json.loads((out / "3-model" / "vocabulary.json").read_text())[0]["name"] == "disc"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"uvis", "baseline: stage-1 masks + IoU linking", "no-prototypes", "no-track-memory"}
    assert set(metrics["uvis"]) == {"class-agnostic", "class-aware"}
    assert len(metrics["uvis"]["class-agnostic"]["stats"]) == 12
    assert 0 <= metrics["uvis"]["class-agnostic"]["davis_j"]["mean"] <= 1  # DAVIS J beside the 12 numbers
    assert 0 <= metrics["baseline: stage-1 masks + IoU linking"]["class-agnostic"]["davis_j"]["object_mean"] <= 1
    # no-track-memory shares stages 1-2 with the main run; no-prototypes re-names and retrains
    assert not (out / "ablations" / "no-track-memory" / "3-model").exists()
    assert (out / "ablations" / "no-track-memory" / "4-segment" / "results.json").is_file()
    assert (out / "ablations" / "no-prototypes" / "3-model" / "model_final.pt").is_file()
    assert not (out / "ablations" / "no-prototypes" / "1-pseudo-labels").exists()
    report = (out / "report.md").read_text()
    assert "baseline: stage-1 masks + IoU linking (class-agnostic)" in report and "contact_sheet.png" in report
    assert "| ARl | J |" in report and "J = DAVIS region similarity" in report


def test_rerun_skips_complete_steps_and_changed_settings_are_refused(sample, tmp_path):
    out = tmp_path / "run"
    config = _config(sample, out, pseudo_from_ground_truth=True)
    run_pipeline(config, log=lambda s: None)
    first = (out / "4-segment" / "results.json").read_text()
    logs: list[str] = []
    run_pipeline(config, log=logs.append)
    assert sum("skipped" in line for line in logs) == 4
    assert (out / "4-segment" / "results.json").read_text() == first
    with pytest.raises(UserError, match="other settings.*top_k"):
        run_pipeline(_config(sample, out, pseudo_from_ground_truth=True, top_k=3), log=lambda s: None)


def test_interrupted_run_resumes_to_the_same_result(sample, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_pipeline(_config(sample, whole, pseudo_from_ground_truth=True), "segment", log=lambda s: None)

    original = _interrupt_second_video(monkeypatch)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_config(sample, resumed, pseudo_from_ground_truth=True), "segment", log=lambda s: None)
    assert not (resumed / "4-segment" / "step.json").exists()
    assert not (resumed / "4-segment" / "results.json").exists()
    monkeypatch.setattr(Segmenter, "segment", original)
    run_pipeline(_config(sample, resumed, pseudo_from_ground_truth=True), "segment", log=lambda s: None)
    assert (resumed / "4-segment" / "results.json").read_text() == (whole / "4-segment" / "results.json").read_text()


def test_step_settings_are_cumulative():
    config = RunConfig(data="d", out="o")
    assert "num_masks" in step_settings(config, "train") and "track_memory" not in step_settings(config, "train")
    assert "track_memory" in step_settings(config, "segment")


def test_cli_run_with_config_file_and_bad_ablation(sample, tmp_path, capsys):
    config_file = tmp_path / "vocab.toml"
    config_file.write_text('name = "x"\n[vocabulary]\nnames = ["disc", "square"]\n')
    code = main(["run", str(sample), "--out", str(tmp_path / "r"), "--vocabulary", str(config_file),
                 "--ablate", "no-such-thing", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown ablation 'no-such-thing'" in err[0]
    bad = tmp_path / "bad.toml"
    bad.write_text("[vocabulary]\nnames = [1, 2]\n")
    assert main(["run", str(sample), "--out", str(tmp_path / "r2"), "--vocabulary", str(bad)]) == 2
    assert "class 1 is 1, not a name" in capsys.readouterr().err


def test_train_on_some_videos_at_a_chosen_size_then_segment_all(sample, tmp_path):
    out = tmp_path / "run"
    names = [v["name"] for v in json.loads((sample / "annotations.json").read_text())["videos"]]
    config = _config(sample, out, pseudo_from_ground_truth=True, image_size=(32, 40), train_videos=names[:1])
    run_pipeline(config, log=lambda s: None)
    trained = json.loads((out / "3-model" / "train_pseudo_labels.json").read_text())
    assert [v["name"] for v in trained["videos"]] == names[:1]
    assert {a["video_id"] for a in trained["annotations"]} == {trained["videos"][0]["id"]}
    assert json.loads((out / "3-model" / "config.json").read_text())["image_size"] == [32, 40]
    segmented = json.loads((out / "4-segment" / "summary.json").read_text())
    assert segmented["videos"] == len(names) == 2  # the held-out video is segmented too
    assert f"trained on 1 of 2 videos; held out: {names[1]}" in (out / "report.md").read_text()
    with pytest.raises(UserError, match="training video.*nope"):
        run_pipeline(_config(sample, tmp_path / "bad", pseudo_from_ground_truth=True, train_videos=["nope"]),
                     "train", log=lambda s: None)


def test_report_command_reproduces_the_config(sample, tmp_path, monkeypatch):
    import shlex

    import uvis.pipeline
    from uvis.cli.run import command_line

    config = _config(sample, tmp_path / "r", pseudo_from_ground_truth=True, image_size=(32, 40),
                     train_videos=["a", "b"], ablations=["no-track-memory"], track_memory=False, num_masks=2,
                     segment_batch_size=8)  # the one setting here with no flag, at its default
    seen: list[RunConfig] = []
    monkeypatch.setattr(uvis.pipeline, "run_pipeline", lambda c, stop_after, **kw: seen.append(c) or tmp_path)
    command = command_line(config)
    assert command.startswith("uvis run ") and "--image-size 32x40" in command
    assert main(shlex.split(command)[1:]) == 0
    assert seen == [dataclasses.replace(config, command=command)]  # the report shows the command it ran
    assert main(["run", str(sample), "--out", "x", "--image-size", "12"]) == 2


def test_interrupted_step_rerun_with_other_settings_is_refused(sample, tmp_path, monkeypatch):
    """A half-made step folder must not be finished with other settings (its first videos would keep the old ones)."""
    original = _interrupt_second_video(monkeypatch)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_config(sample, out, pseudo_from_ground_truth=True), "segment", log=lambda s: None)
    assert len(list((out / "4-segment" / "videos").glob("*.json"))) == 1
    monkeypatch.setattr(Segmenter, "segment", original)
    with pytest.raises(UserError, match="other settings.*top_k"):
        run_pipeline(_config(sample, out, pseudo_from_ground_truth=True, top_k=3), "segment", log=lambda s: None)
    assert not (out / "4-segment" / "step.json").exists()
    run_pipeline(_config(sample, out, pseudo_from_ground_truth=True), "segment", log=lambda s: None)  # same: resumes
    assert json.loads((out / "4-segment" / "summary.json").read_text())["skipped_finished"] == 1


@pytest.mark.parametrize("flag", [["--batch-size", "0"], ["--steps", "-3"]])
def test_cli_run_bad_training_numbers_are_one_line(sample, tmp_path, capsys, flag):
    args = ["run", str(sample), "--out", str(tmp_path / "r"), "--pseudo-from-ground-truth", "--preset", "tiny",
            "--device", "cpu", "--no-progress", *flag]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag[0] in err[0]
    assert not (tmp_path / "r").exists()


def test_skip_bad_videos_runs_every_step_without_the_unreadable_one(sample, tmp_path, tiny_weights):
    frames = sorted((sample / "JPEGImages").glob("*/*.png"))
    frames[-1].write_bytes(b"broken")  # the last frame of the second video
    out = tmp_path / "run"
    config = _config(sample, out, backbone="tiny", dino_weights=str(tiny_weights), resolution=32,
                     classes=list(SYNTHETIC_CLASSES))
    with pytest.raises(UserError, match=frames[-1].name):
        run_pipeline(config, log=lambda s: None)
    said: list[str] = []
    run_pipeline(RunConfig(**{**config.__dict__, "skip_bad_videos": True}), log=said.append)
    assert sum("left out 1 unreadable video(s)" in line and "new --out" in line for line in said) == 2
    pseudo = json.loads((out / "1-pseudo-labels" / "pseudo_labels.json").read_text())
    assert len(pseudo["videos"]) == 1 and len(pseudo["info"]["skipped_videos"]) == 1
    summary = json.loads((out / "4-segment" / "summary.json").read_text())
    assert summary["videos"] == 1 and len(summary["unreadable"]) == 1
    assert len(json.loads((out / "metrics.json").read_text())["uvis"]["class-agnostic"]["stats"]) == 12


def test_device_auto_reaches_every_step(sample, tmp_path):
    """--device auto (what `uvis run --help` offers) works through segmenting, not only training."""
    out = tmp_path / "run"
    run_pipeline(_config(sample, out, device="auto", pseudo_from_ground_truth=True, train_steps=2), "segment",
                 log=lambda s: None)
    assert (out / "4-segment" / "results.json").is_file()
