"""RunFolder: the layout of a trained run, its atomic writes, and one-line errors for a folder that is not a run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from uvis.errors import UserError
from uvis.features.weights import file_sha256
from uvis.train.run_folder import PIPELINE_MODEL_FOLDER, RunFolder


def _make_run(path):
    run = RunFolder(path)
    path.mkdir(parents=True)
    run.write_config({"lr": 0.001, "model": {"backbone": "tiny"}})
    run.write_vocabulary([(1, "dog"), (2, "cat")])
    return run


def test_layout_reads_and_writes(tmp_path):
    run = _make_run(tmp_path / "run")
    assert run.exists() and not run.has_checkpoint() and run.weights() is None
    assert [p.name for p in (run.config_path, run.vocabulary_path, run.checkpoint, run.final_weights, run.clip_path,
                             run.metrics_path, run.weights_record_path)] == [
        "config.json", "vocabulary.json", "checkpoint.pt", "model_final.pt", "clip.json", "metrics.jsonl",
        "weights.json"]
    assert run.read_config()["lr"] == 0.001 and run.read_vocabulary() == [(1, "dog"), (2, "cat")]
    assert run.read_clip() is None and run.read_metrics() == [] and run.read_weights_record() == {}
    run.write_clip({"dim": 8})
    assert run.read_clip() == {"dim": 8}
    run.write_checkpoint(lambda p: p.write_bytes(b"last"))
    assert run.weights() == run.checkpoint  # before the final weights exist, the last checkpoint
    run.write_final_weights(lambda p: p.write_bytes(b"final"))
    assert run.weights() == run.final_weights
    assert run.weights_id() == {"file": "model_final.pt", "sha256": file_sha256(run.final_weights)}
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_metrics_skip_torn_lines_and_are_cut_back_on_resume(tmp_path):
    run = _make_run(tmp_path / "run")
    run.metrics_path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [m["step"] for m in run.read_metrics()] == [1, 2]
    run.keep_metrics_until(1)
    assert [m["step"] for m in run.read_metrics()] == [1]


def test_find_accepts_a_run_or_a_uvis_run_folder(tmp_path):
    inner = _make_run(tmp_path / "pipeline" / PIPELINE_MODEL_FOLDER)
    assert RunFolder.find(tmp_path / "pipeline").path == inner.path
    assert RunFolder.find(inner.path).path == inner.path


@pytest.mark.parametrize("missing", ["config.json", "vocabulary.json"])
def test_a_folder_that_is_not_a_run_is_one_line_naming_the_file_and_the_parameter(tmp_path, missing):
    run = _make_run(tmp_path / "run")
    (run.path / missing).unlink()
    for read in (run.read_config, run.read_vocabulary):
        if missing.startswith(read.__name__.removeprefix("read_")):
            with pytest.raises(UserError) as e:
                read()
            text = str(e.value)
            assert "\n" not in text and missing in text and "run_dir" in text and "fix:" in text
    with pytest.raises(UserError, match=f"model is not a training run folder \\({missing} is missing\\)"):
        RunFolder.find(run.path, "model").require()
    with pytest.raises(UserError, match="model folder not found"):
        RunFolder(tmp_path / "nowhere", "model").require()
    with pytest.raises(UserError, match="model has no weights yet"):
        RunFolder(tmp_path / "nowhere", "model").require_weights()


def test_damaged_files_are_named(tmp_path):
    run = _make_run(tmp_path / "run")
    run.config_path.write_text("{not json")
    with pytest.raises(UserError, match=r"config\.json is damaged"):
        run.read_config()
    run.vocabulary_path.write_text(json.dumps([{"id": 1}]))
    with pytest.raises(UserError, match=r"vocabulary\.json is not a list of \{id, name\}"):
        run.read_vocabulary()


def test_importing_it_loads_no_torch():
    code = "import sys, uvis.train.run_folder; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"
