"""Damaged derived data on resume (segment records, pseudo-label parts, checkpoints), partial outputs of a failed
write, a long input name, truncated videos, and worker processes: detected, redone or refused, never a traceback."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from oracle_predictor import OraclePredictor
from uvis.cli import segment as segment_cli
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset
from uvis.data.video import open_video
from uvis.data.workers import check_workers, cpu_count
from uvis.errors import UserError
from uvis.pseudo.collection import LabellingJob, label_collection
from uvis.pseudo.maskcut import FrameMask


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("records") / "synth"
    return root, make_dataset(root, num_videos=2, num_frames=4, height=32, width=48, num_objects=2, seed=3)


def _segment(monkeypatch, dataset, data: Path, out: Path, *extra: str) -> int:
    monkeypatch.setattr(segment_cli, "load_predictor", lambda *args: OraclePredictor(dataset))
    return main(["segment", str(data), "--model", "oracle", "--out", str(out), "--no-progress", "--no-overlay", *extra])


@pytest.mark.parametrize("damage", [
    lambda r: r["summary"].update(frames="4"),  # a field of the wrong type
    lambda r: r["tracks"][0].update(score=None),
    lambda r: r.update(results={"a": 1}),
    lambda r: r["results"][0].update(segmentations=[None]),  # one frame for a 4-frame video
    lambda r: r.clear() or r.update(video_id=1, name="synth_0000"),
], ids=["frames-text", "score-null", "results-object", "short-segmentations", "empty"])
def test_damaged_segment_record_is_named_and_redone(synth, tmp_path, monkeypatch, capsys, damage):
    root, dataset = synth
    out = tmp_path / "out"
    assert _segment(monkeypatch, dataset, root, out) == 0
    first = json.loads((out / "results.json").read_text())
    record = out / "videos" / "synth_0000.json"
    data = json.loads(record.read_text())
    damage(data)
    record.write_text(json.dumps(data))
    capsys.readouterr()
    assert _segment(monkeypatch, dataset, root, out) == 0
    captured = capsys.readouterr()
    assert f"{record}: damaged record of video synth_0000; segmenting it again" in captured.err
    assert "segmented 1 video(s), skipped 1" in captured.out
    assert json.loads((out / "results.json").read_text()) == first


def test_record_that_is_not_json_is_redone(synth, tmp_path, monkeypatch, capsys):
    root, dataset = synth
    out = tmp_path / "out"
    assert _segment(monkeypatch, dataset, root, out) == 0
    (out / "videos" / "synth_0001.json").write_text("[" * 100_000)
    assert _segment(monkeypatch, dataset, root, out) == 0
    assert "damaged record of video synth_0001" in capsys.readouterr().err


def test_full_disk_while_writing_pngs_leaves_no_partial_video(synth, tmp_path, monkeypatch, capsys):
    """ENOSPC at the third PNG: one line, and no half set of PNGs beside no record; the rerun completes it."""
    root, dataset = synth
    out = tmp_path / "out"
    from uvis.data import atomic

    calls = {"n": 0}
    real_replace = atomic.os.replace

    def replace(src, dst):
        if str(dst).endswith(".png"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    assert _segment(monkeypatch, dataset, root, out) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "No space left on device" in err[0] and "free disk space" in err[0]
    assert not (out / "masks" / "synth_0000").exists() and not (out / "videos" / "synth_0000.json").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert _segment(monkeypatch, dataset, root, out) == 0
    assert len(list((out / "masks" / "synth_0000").glob("*.png"))) == 4


def test_long_folder_name_is_segmented(synth, tmp_path, monkeypatch, capsys):
    """A 250-character folder name is valid input: its output names must fit too (names are capped, with a
    digest so two long names stay distinct)."""
    root, dataset = synth
    long = tmp_path / ("v" * 250)
    shutil.copytree(root / "JPEGImages" / dataset.videos[0].name, long)
    out = tmp_path / "out"
    assert _segment(monkeypatch, dataset, long, out) == 0
    records = list((out / "videos").glob("*.json"))
    assert len(records) == 1 and len(records[0].name) <= 205
    assert len(list((out / "masks").iterdir())) == 1


# --- pseudo-label parts


def _job(calls: list[int]) -> LabellingJob:
    def labeller(batch: np.ndarray) -> list[list[FrameMask]]:
        calls.append(len(batch))
        h, w = batch.shape[1:3]
        mask = np.zeros((h, w), bool)
        mask[: h // 2, : w // 2] = True
        return [[FrameMask(rle=mask_utils.encode(mask), score=0.9)] for _ in batch]

    return LabellingJob(stage="test", description="test", settings={"stage": "test"}, make_labeller=lambda: labeller)


@pytest.mark.parametrize("damage", [
    lambda p: p["video"].pop("file_names"),
    lambda p: p["annotations"][0].pop("segmentation"),
    lambda p: p["annotations"][0].update(frame_index=99),
    lambda p: p.update(video="x"),
], ids=["no-file-names", "no-segmentation", "frame-out-of-range", "video-text"])
def test_damaged_pseudo_label_part_is_named_and_relabelled(synth, tmp_path, capsys, damage):
    root, _ = synth
    collection = discover(root)
    calls: list[int] = []
    out = tmp_path / "pl"
    merged = label_collection(collection, out, _job(calls), batch_size=4, progress=False)
    first = json.loads(merged.read_text())
    part = out / "videos" / "1.json"
    data = json.loads(part.read_text())
    damage(data)
    part.write_text(json.dumps(data))
    calls.clear()
    merged = label_collection(collection, out, _job(calls), batch_size=4, progress=False)
    assert f"{part}: damaged pseudo-label part; labelling its video again" in capsys.readouterr().err
    assert calls == [4]  # only the damaged video was labelled again
    assert json.loads(merged.read_text())["annotations"] == first["annotations"]


def test_failed_first_video_leaves_no_config_to_refuse_the_corrected_rerun(tmp_path):
    from hostile_inputs import audio_only_mp4

    data = tmp_path / "in"
    data.mkdir()
    audio_only_mp4(data / "a.mp4")
    out = tmp_path / "pl"
    with pytest.raises(UserError, match="no video stream"):
        label_collection(discover(data), out, _job([]), progress=False)
    assert not out.exists()  # no config.json (nor empty folders) left to refuse a rerun with other settings


# --- checkpoints


def test_cut_checkpoint_on_resume_is_refused_with_the_fix(tmp_path, capsys):
    from train_helpers import synthetic_pseudo

    _, pseudo = synthetic_pseudo(tmp_path, num_videos=1, num_frames=2)
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "data"), "--pseudo", str(pseudo), "--out", str(run), "--preset",
            "tiny", "--checkpoint-every", "1", "--device", "cpu", "--no-progress"]
    assert main([*args, "--steps", "1"]) == 0
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:20_000])
    capsys.readouterr()
    assert main([*args, "--steps", "2", "--resume"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and str(checkpoint) in err[0] and "cannot read checkpoint" in err[0] and "fix:" in err[0]


# --- truncated videos


def test_truncated_video_is_an_error_naming_both_counts_unless_accepted(tmp_path):
    from hostile_inputs import faststart_mp4

    full = faststart_mp4(tmp_path / "full.mp4", frames=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UserError, match=r"declares 30 frames but holds \d+") as err:
        open_video(cut)
    assert "accept_truncated=True" in str(err.value)
    video = open_video(cut, accept_truncated=True)
    frames = video.read_all()
    assert 0 < len(video) == len(frames) < 30
    assert len(open_video(full).read_all()) == 30  # an intact file is not affected
    item = discover(cut, accept_truncated=True).items[0]
    assert len(item.open()) == len(frames)


def test_truncated_video_through_segment_and_the_flag(tmp_path, monkeypatch, capsys):
    from hostile_inputs import faststart_mp4

    full = faststart_mp4(tmp_path / "full.mp4", frames=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])

    from uvis.data.vocabulary import Vocabulary
    from uvis.predict.base import Predictor

    class Empty(Predictor):
        vocabulary = Vocabulary.from_names(["object"])

        def predict(self, frames, next_frame=None):
            import torch

            from uvis.predict.types import FrameDetections

            h, w = frames.shape[1:3]
            return [FrameDetections(torch.zeros(0, 4), torch.zeros(0, 1), torch.zeros(0), torch.zeros(0, h, w, dtype=torch.bool))
                    for _ in frames]

    monkeypatch.setattr(segment_cli, "load_predictor", lambda *args: Empty())
    base = ["segment", str(cut), "--model", "x", "--no-progress", "--no-overlay", "--no-png"]
    assert main([*base, "--out", str(tmp_path / "o1")]) == 2
    assert "declares 12 frames" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists()
    assert main([*base, "--out", str(tmp_path / "o2"), "--accept-truncated"]) == 0


# --- workers


def test_worker_counts_are_bounded_by_the_machine():
    assert check_workers(0) == 0 and check_workers(cpu_count()) == cpu_count()
    with pytest.raises(UserError, match="workers=1000: this machine has"):
        check_workers(1000)


def test_stored_config_with_too_many_workers_or_bad_numbers(tmp_path):
    from uvis.train import TrainConfig

    config = TrainConfig.preset_config("tiny", out=str(tmp_path), num_workers=1000)
    config.check()
    assert config.num_workers <= max(2, cpu_count())
    for field, value in (("lr", float("inf")), ("image_size", (0, 0)), ("steps", 0)):
        bad = TrainConfig.preset_config("tiny", out=str(tmp_path))
        setattr(bad, field, value)
        with pytest.raises(UserError, match=field):
            bad.check()
    bad = TrainConfig.preset_config("tiny", out=str(tmp_path))
    bad.loss.clip_weight = float("nan")
    with pytest.raises(UserError, match="clip_weight"):
        bad.check()


def test_data_loader_workers_end_with_their_parent(tmp_path):
    """A worker asks the kernel for SIGTERM when its parent dies: a SIGKILLed trainer leaves no process behind."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import multiprocessing as mp, os, time
        from uvis.data.workers import end_with_parent

        def child(path):
            end_with_parent()
            open(path, "w").write(str(os.getpid()))
            time.sleep(120)

        if __name__ == "__main__":
            mp.get_context("fork").Process(target=child, args=({str(pid_file)!r},)).start()
            time.sleep(120)
    """)
    src = str(Path(__file__).resolve().parents[2] / "src")
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": src})
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and parent.poll() is None
        time.sleep(0.2)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # reaped by init once it ends; a zombie counts as ended
            with open(f"/proc/{child}/stat") as f:
                if f.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the worker outlived its parent")


# --- uvis run's step records


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"settings": 5}', "[" * 100_000])
def test_damaged_step_record_is_named_and_the_step_redone(tmp_path, capsys, text):
    from uvis.pipeline import STEP_FILE, _check_no_conflict, _is_complete

    folder = tmp_path / "4-segment"
    folder.mkdir()
    (folder / STEP_FILE).write_text(text)
    assert not _is_complete(folder, {"a": 1})
    _check_no_conflict(folder, {"a": 1})  # no traceback, no refusal: the step runs again
    assert "damaged step record; redoing the step" in capsys.readouterr().err
    assert not (folder / STEP_FILE).exists()


def test_stored_areas_that_are_not_finite_are_recomputed(tmp_path, synth):
    from uvis.data.ytvis import load_dataset

    root, dataset = synth
    data = json.loads((root / "annotations.json").read_text())
    data["annotations"][0]["areas"] = [float("nan")] * len(data["annotations"][0]["segmentations"])
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    track = load_dataset(path).tracks[0]
    assert track.areas is None  # recomputed from the masks when needed
