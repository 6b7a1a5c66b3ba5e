"""Check first: every weights file a command needs is resolved before any stage starts, all missing ones in one
error; each step records the sha256 of the weights it used, and a rerun with other weights is refused."""

from __future__ import annotations

import json

import pytest
import torch

from uvis.cli.main import main
from uvis.data.synthetic import SYNTHETIC_CLASSES, make_dataset
from uvis.errors import UserError, WeightsNotFoundError
from uvis.features import backbones, weights
from uvis.pipeline import RunConfig, run_pipeline


@pytest.fixture()
def sample(tmp_path):
    root = tmp_path / "synth"
    make_dataset(root, num_videos=2, num_frames=3, height=40, width=48, num_objects=2, seed=3)
    return root


def _tiny_dino(path, seed=0):
    torch.manual_seed(seed)
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), path)
    return path


def _forbid_stages(monkeypatch):
    """Any stage that starts fails the test."""
    import uvis.pseudo.collection as collection

    def started(*args, **kwargs):
        raise AssertionError("a stage started")

    monkeypatch.setattr(collection, "label_collection", started)


def test_run_with_a_missing_clip_file_starts_no_stage(sample, tmp_path, monkeypatch, capsys):
    _forbid_stages(monkeypatch)
    dino_file = _tiny_dino(tmp_path / "dino.pth")
    out = tmp_path / "run"
    code = main(["run", str(sample), "--out", str(out), "--dino", "tiny", "--dino-weights", str(dino_file),
                 "--preset", "tiny", "--classes", ",".join(SYNTHETIC_CLASSES), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ViT-B-32.pt" in err and "--clip-weights" in err and "http://127.0.0.1:9/ViT-B-32.pt" in err
    assert not out.exists()


def test_segment_model_none_names_both_missing_files_in_one_error(sample, tmp_path, capsys):
    code = main(["segment", str(sample), "--model", "none", "--features", "dino", "--out", str(tmp_path / "seg"),
                 "--device", "cpu", "--classes", "disc,square"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "2 pretrained weights files are missing, nothing was started" in err
    assert "dino_vitbase8_pretrain.pth" in err and "--dino-weights" in err and "ViT-B-32.pt" in err
    assert not (tmp_path / "seg").exists()


def test_segment_model_none_without_dino_uses_motion_and_still_needs_clip_for_classes(sample, tmp_path, capsys):
    code = main(["segment", str(sample), "--model", "none", "--out", str(tmp_path / "seg"), "--device", "cpu",
                 "--classes", "disc,square"])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "weights-free motion features" in out
    assert "ViT-B-32.pt" in err and "--clip-weights" in err and "dino_vitbase8" not in err
    assert not (tmp_path / "seg").exists()


def test_pseudo_label_name_and_train_check_first(sample, tmp_path, capsys):
    dino_file = _tiny_dino(tmp_path / "dino.pth")
    code = main(["pseudo-label", str(sample), "--out", str(tmp_path / "pl"), "--dino", "tiny", "--dino-weights",
                 str(dino_file), "--name", "--no-progress", "--device", "cpu"])
    assert code == 2 and "ViT-B-32.pt" in capsys.readouterr().err
    assert not (tmp_path / "pl").exists()
    code = main(["pseudo-label", str(sample), "--out", str(tmp_path / "pl"), "--dino", "dino_vits16"])
    assert code == 2 and "dino_deitsmall16_pretrain.pth" in capsys.readouterr().err
    (tmp_path / "p.json").write_text(json.dumps({"videos": [], "annotations": [], "categories": []}))
    code = main(["name", str(tmp_path / "p.json"), "--data", str(sample), "--out", str(tmp_path / "n.json")])
    assert code == 2 and "ViT-B-32.pt" in capsys.readouterr().err
    code = main(["train", "--data", str(sample), "--pseudo", str(tmp_path / "p.json"), "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "dino_resnet50_pretrain.pth" in err and "--backbone-weights" in err
    assert not (tmp_path / "t").exists()


def test_steps_record_the_weights_and_refuse_other_weights(sample, tmp_path):
    dino_file = _tiny_dino(tmp_path / "dino.pth", seed=0)
    out = tmp_path / "run"
    config = RunConfig(data=str(sample), out=str(out), device="cpu", progress=False, backbone="tiny",
                       dino_weights=str(dino_file), resolution=32, train_preset="tiny")
    run_pipeline(config, "pseudo-label", log=lambda s: None)
    digest = weights.file_sha256(dino_file)
    step = json.loads((out / "1-pseudo-labels" / "step.json").read_text())
    assert step["settings"]["weights"] == {"dino": {"file": "dino.pth", "sha256": digest}}
    assert json.loads((out / "1-pseudo-labels" / "config.json").read_text())["weights"]["sha256"] == digest
    assert json.loads((out / "weights.json").read_text())["dino"]["sha256"] == digest
    logs: list[str] = []
    run_pipeline(config, "pseudo-label", log=logs.append)  # same file: the step is reused
    assert any("complete" in line and "skipped" in line for line in logs)
    _tiny_dino(dino_file, seed=1)  # other weights under the same path
    with pytest.raises(UserError, match=r"1-pseudo-labels was made with other weights \(dino: dino\.pth sha256 "
                                        + digest[:12] + r"… -> now dino\.pth sha256 [0-9a-f]{12}…\)"):
        run_pipeline(config, "pseudo-label", log=lambda s: None)


def test_pseudo_from_ground_truth_needs_no_stage_1_weights(sample, tmp_path):
    from uvis.pipeline import Pipeline

    config = RunConfig(data=str(sample), out=str(tmp_path / "r"), pseudo_from_ground_truth=True, train_preset="tiny")
    assert Pipeline(config).weights_needed() == {}
    assert set(Pipeline(RunConfig(data=str(sample), out="x")).weights_needed()) == {"dino", "clip", "backbone"}
    assert set(Pipeline(RunConfig(data=str(sample), out="x")).weights_needed("pseudo-label")) == {"dino"}
    with pytest.raises(WeightsNotFoundError, match="3 pretrained weights files are missing"):
        Pipeline(RunConfig(data=str(sample), out=str(tmp_path / "x"))).check_weights()
    assert not (tmp_path / "x").exists()


def test_report_lists_the_weights_with_their_sha256(tmp_path):
    from uvis.report import RunReport, write_report

    inputs = RunReport(title="t", weights={"DINO features for MaskCut (stage 1)": {"file": "d.pth", "sha256": "ab" * 32}})
    text = write_report(tmp_path, inputs).read_text()
    assert "## Pretrained weights" in text and f"| DINO features for MaskCut (stage 1) | d.pth | `{'ab' * 32}` |" in text
