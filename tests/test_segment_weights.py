"""`uvis segment` resumes only with the very weights that made the finished videos, not just the same run path."""

from __future__ import annotations

import json
import shutil

from train_helpers import synthetic_pseudo, tiny_config
from uvis.cli.main import main
from uvis.predict.trained import TrainedPredictor
from uvis.train import train


def test_a_model_retrained_in_the_same_folder_is_not_mixed_with_the_old_results(tmp_path, capsys):
    _, pseudo = synthetic_pseudo(tmp_path, num_videos=1, num_frames=2)
    run = train(tiny_config(tmp_path, pseudo, "run", steps=1, seed=0), progress=False)
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "data"), "--model", str(run), "--out", str(out), "--device", "cpu",
            "--no-progress", "--no-overlay", "--no-png"]
    assert main(args) == 0
    record = json.loads(next((out / "videos").glob("*.json")).read_text())
    weights = TrainedPredictor.from_run(run, device="cpu").fingerprint()
    assert record["settings"]["weights"] == weights and weights["file"] == "model_final.pt"
    assert main(args) == 0 and "skipped 1 finished" in capsys.readouterr().out  # same weights: resumes
    shutil.rmtree(run)
    train(tiny_config(tmp_path, pseudo, "run", steps=1, seed=1), progress=False)  # same path, new weights
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (weights)" in err[0]
