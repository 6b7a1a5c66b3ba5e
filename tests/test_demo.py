"""``uvis demo`` (what ``make demo`` runs): offline it names the missing weights and runs weights-free (motion)."""

from __future__ import annotations

import json

import torch

from uvis.cli.main import main


def test_demo_offline_runs_weights_free_from_motion_and_reruns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UVIS_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, *args, **kwargs):
        raise OSError(f"no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "dino_deitsmall16_pretrain.pth" in printed and "ViT-B-32" in printed  # what is missing, and where
    assert "stage 1 from motion (--features motion)" in printed
    run = out / "run-motion"
    assert str(run / "report.md") in printed
    labels = json.loads((run / "1-pseudo-labels" / "pseudo_labels.json").read_text())
    assert labels["info"]["config"]["features"] == "motion" and labels["annotations"]  # real masks, no ground truth
    assert "Stage 1 came from motion" in (run / "report.md").read_text()
    assert f"uvis segment VIDEO --model {run} --out OUT" in printed  # how to reuse the trained model
    assert (run / "report.md").is_file()
    assert isinstance(json.loads((run / "4-segment" / "results.json").read_text()), list)  # 4 steps: few tracks
    assert "class-agnostic" in json.loads((run / "metrics.json").read_text())["uvis"]
    assert main(["demo", "--out", str(out), "--steps", "4", "--device", "cpu"]) == 0  # finished steps reused


def test_run_and_demo_reject_a_bad_device_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tmp_path), "--out", str(out), "--device", "cuda:7x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown --device 'cuda:7x'" in err[0] and "auto, cpu, cuda" in err[0]
    assert not out.exists()  # checked before the input is read or a step runs
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "gpu"]) == 2
    assert "unknown --device 'gpu'" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
    if not torch.cuda.is_available():
        assert main(["run", str(tmp_path), "--out", str(out), "--device", "cuda"]) == 2
        assert "no CUDA device is visible" in capsys.readouterr().err
