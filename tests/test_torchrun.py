"""Every step under ``torchrun --nproc-per-node 2`` on CPU (gloo), compared with one process on the same inputs.

The jobs are launched with torchrun itself (``python -m torch.distributed.run --standalone``); each process runs
the real command line through ``tests/torchrun_entry.py``, which swaps in a tiny random CLIP. Stage 1 uses a
tiny random DINO. One-process references run in this process with one CPU thread, as torchrun gives each of
its processes (OMP_NUM_THREADS=1), so floating-point reductions round the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_clip import save_tiny_clip, tiny_clip_loader
from uvis.cli.main import main
from uvis.data.synthetic import make_dataset
from uvis.distributed import Group, balanced_shares, job
from uvis.features import backbones
from uvis.pseudo.clip_model import ClipModel

ENTRY = Path(__file__).with_name("torchrun_entry.py")
SRC = Path(__file__).parents[1] / "src"
TINY_DINO = ["--dino", "tiny", "--resolution", "32", "--num-masks", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    make_dataset(root / "synth", num_videos=3, num_frames=3, height=24, width=40, seed=1)
    torch.manual_seed(0)
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), root / "tiny.pth")
    clip = save_tiny_clip(root)
    return {"data": root / "synth", "weights": root / "tiny.pth", "clip": clip, "root": root}


def torchrun(args: list, cwd: Path, nproc: int = 2, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **env}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(ENTRY),
           *map(str, args)]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def uvis(args: list) -> int:
    return main([str(a) for a in args])


@contextmanager
def one_process(cwd: Path):
    """In this process, in ``cwd``, with one CPU thread (as each torchrun process has)."""
    threads, here = torch.get_num_threads(), Path.cwd()
    cwd.mkdir(parents=True, exist_ok=True)
    os.chdir(cwd)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        os.chdir(here)


def without_timings(obj):
    """The JSON with its wall-clock fields (seconds, fps) removed: the only fields two runs may differ in."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k not in ("seconds", "fps")}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def same_json(a: Path, b: Path) -> bool:
    return without_timings(json.loads(a.read_text())) == without_timings(json.loads(b.read_text()))


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


# ------------------------------------------------------------------------------------------------ units
def test_balanced_shares_split_by_frame_count():
    weights = [100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]  # one long video, ten short ones
    shares = balanced_shares(weights, 2)
    assert shares == [[0], list(range(1, 11))]  # round-robin would give one process 150 frames, the other 50
    assert balanced_shares(weights, 2) == shares  # the same on every process
    three = balanced_shares([5, 1, 4, 2, 3, 3], 3)
    assert sorted(i for s in three for i in s) == list(range(6))
    assert [sum([5, 1, 4, 2, 3, 3][i] for i in s) for s in three] == [6, 6, 6]
    assert all(s == sorted(s) for s in three)
    assert balanced_shares([3, 1], 4) == [[0], [1], [], []]


def test_a_plain_process_is_a_job_of_one(monkeypatch):
    for key in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    with job("cpu") as group:
        assert not group.enabled and group.is_main and group.world_size == 1
        assert group.share([3, 1, 2]) == [0, 1, 2]
        assert group.broadcast({"a": 1}) == {"a": 1} and group.gather(5) == [5]
        assert group.device("cuda:1") == "cuda:1"  # a fixed GPU is refused only under torchrun
        group.barrier()


def test_device_under_torchrun_is_the_local_rank_gpu(monkeypatch):
    from uvis.distributed import DistInfo
    from uvis.errors import UserError

    group = Group(DistInfo(rank=3, world_size=4, local_rank=1, grouped=True), store=object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert group.device(None) == group.device("auto") == group.device("cuda") == "cuda:1"
    assert group.device("cpu") == "cpu"
    with pytest.raises(UserError, match="under torchrun"):
        group.device("cuda:0")


# ------------------------------------------------------------------------------------- the commands
@pytest.mark.slow
def test_pseudo_label_and_name_under_torchrun_equal_one_process(inputs, tmp_path, monkeypatch):
    args = ["pseudo-label", inputs["data"], "--out", "out", "--dino-weights", inputs["weights"], *TINY_DINO,
            "--batch-size", "2", "--no-progress"]
    with one_process(tmp_path / "one"):
        assert uvis(args) == 0
    two = torchrun(args, tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("wrote") == 1  # rank 0 speaks for the job
    one_out, two_out = tmp_path / "one" / "out", tmp_path / "two" / "out"
    assert files(one_out) == files(two_out) == ["config.json", "pseudo_labels.json", "videos/1.json",
                                                "videos/2.json", "videos/3.json"]
    for name in files(one_out):
        assert same_json(one_out / name, two_out / name), name  # equal but for the wall-clock seconds
    assert (one_out / "config.json").read_bytes() == (two_out / "config.json").read_bytes()

    # uvis name on the same pseudo-labels: byte for byte (naming records no timings of its own)
    pseudo = one_out / "pseudo_labels.json"
    name = ["name", pseudo, "--data", inputs["data"], "--out", "named/named.json", "--classes", "a,b,c",
            "--templates", "single", "--device", "cpu", "--clip-weights", str(inputs["clip"])]
    monkeypatch.setattr(ClipModel, "load", tiny_clip_loader(inputs["clip"]))  # the file the jobs load
    with one_process(tmp_path / "one"):
        assert uvis(name) == 0
    two = torchrun(name, tmp_path / "two", UVIS_TEST_TINY_CLIP=str(inputs["clip"]))
    assert two.returncode == 0, two.stderr
    one_named, two_named = tmp_path / "one" / "named", tmp_path / "two" / "named"
    assert (one_named / "named.json").read_bytes() == (two_named / "named.json").read_bytes()
    with np.load(one_named / "named.embeddings.npz") as a, np.load(two_named / "named.embeddings.npz") as b:
        assert a["embeddings"].shape[0] > 0
        assert all(np.array_equal(a[k], b[k]) for k in ("ids", "embeddings"))
    assert sorted(p.name for p in (two_named / "named.parts").iterdir()) == \
        sorted(p.name for p in (one_named / "named.parts").iterdir())  # each process cached its videos


@pytest.mark.slow
def test_segment_under_torchrun_equals_one_process(inputs, tmp_path, monkeypatch):
    args = ["segment", inputs["data"], "--model", "none", "--dino-weights", inputs["weights"], *TINY_DINO,
            "--classes", "a,b", "--batch-size", "2", "--out", "seg", "--no-progress",
            "--clip-weights", str(inputs["clip"])]
    monkeypatch.setattr(ClipModel, "load", tiny_clip_loader(inputs["clip"]))  # the file the jobs load
    with one_process(tmp_path / "one"):
        assert uvis(args) == 0
    two = torchrun([a for a in args if a != "--no-progress"], tmp_path / "two",
                   UVIS_TEST_TINY_CLIP=str(inputs["clip"]))
    assert two.returncode == 0, two.stderr
    assert "on 2 processes" in two.stdout and two.stdout.count("segmented 3 video(s)") == 1
    # one progress display for the job (rank 0's), counting both processes' videos: off a terminal, log lines
    assert two.stderr.count("videos: done, 3 videos in") == 1 and "videos:   0%" not in two.stderr, two.stderr
    one_out, two_out = tmp_path / "one" / "seg", tmp_path / "two" / "seg"
    assert files(one_out) == files(two_out)
    for name in files(one_out):
        if name.endswith(".json"):
            assert same_json(one_out / name, two_out / name), name
        else:  # id PNGs and overlay videos
            assert (one_out / name).read_bytes() == (two_out / name).read_bytes(), name
    assert (one_out / "results.json").read_bytes() == (two_out / "results.json").read_bytes()
    assert json.loads((two_out / "summary.json").read_text())["segmented_now"] == 3  # counted over both


@pytest.mark.slow
def test_run_under_torchrun(inputs, tmp_path, monkeypatch):
    """Stage 1 equals one process's; training is one DDP job (two processes average gradients over different
    batches, so its weights differ from one process's); evaluation and the report come from rank 0."""
    args = ["run", inputs["data"], "--out", "run", "--dino-weights", inputs["weights"], "--dino", "tiny",
            "--num-masks", "2", "--templates", "single", "--preset", "tiny", "--steps", "2", "--image-size", "32x32",
            "--device", "cpu", "--no-progress", "--clip-weights", str(inputs["clip"])]
    monkeypatch.setattr(ClipModel, "load", tiny_clip_loader(inputs["clip"]))  # the file the jobs load
    with one_process(tmp_path / "one"):
        assert uvis(args) == 0
    two = torchrun(args, tmp_path / "two", UVIS_TEST_TINY_CLIP=str(inputs["clip"]))
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("done: run") == 1 and two.stdout.count("[train] running") == 1
    one_run, two_run = tmp_path / "one" / "run", tmp_path / "two" / "run"
    for step in ("1-pseudo-labels", "2-named"):
        for name in files(one_run / step):
            if name.endswith(".json"):
                assert same_json(one_run / step / name, two_run / step / name), f"{step}/{name}"
    ckpt = torch.load(two_run / "3-model" / "checkpoint.pt", weights_only=False)
    assert ckpt["data_order"]["world_size"] == 2 and len(ckpt["rng"]) == 2
    for name in ("metrics.json", "report.md", "4-segment/results.json", "4-segment/step.json"):
        assert (two_run / name).is_file(), name
    assert json.loads((two_run / "metrics.json").read_text())["uvis"]["class-agnostic"]["stats"].keys() == \
        json.loads((one_run / "metrics.json").read_text())["uvis"]["class-agnostic"]["stats"].keys()


# ----------------------------------------------------------------------------------------------- faults
@pytest.mark.slow
def test_a_killed_process_stops_the_job_with_one_line_and_a_rerun_completes(inputs, tmp_path):
    args = ["pseudo-label", inputs["data"], "--out", "out", "--dino-weights", inputs["weights"], *TINY_DINO,
            "--no-progress"]
    # three videos of 3 frames: rank 0 takes synth_0000 and synth_0002, rank 1 synth_0001
    killed = torchrun(args, tmp_path, UVIS_TEST_KILL="1:synth_0001")
    assert killed.returncode != 0
    lines = [ln for ln in killed.stderr.splitlines() if ln.startswith("uvis pseudo-label: error:")]
    assert lines == ["uvis pseudo-label: error: rank 1 of 2, video synth_0001: stopped without a word "
                     "(killed or crashed)"], killed.stderr
    out = tmp_path / "out"
    finished = sorted(p.name for p in (out / "videos").glob("*")) if (out / "videos").is_dir() else []
    assert set(finished) <= {"1.json", "3.json"}  # whatever rank 0 finished before it was stopped, whole
    assert not (out / "pseudo_labels.json").exists()
    # the rerun, with one process, labels what is missing and merges
    with one_process(tmp_path):
        assert uvis(args) == 0
    merged = json.loads((out / "pseudo_labels.json").read_text())
    assert [v["name"] for v in merged["videos"]] == ["synth_0000", "synth_0001", "synth_0002"]


@pytest.mark.slow
def test_an_unreadable_video_names_rank_and_video_and_skip_bad_videos_works_across_processes(inputs, tmp_path):
    data = tmp_path / "synth"
    make_dataset(data, num_videos=3, num_frames=3, height=24, width=40, seed=1)
    (data / "JPEGImages" / "synth_0001" / "00001.png").write_bytes(b"not a png")
    args = ["pseudo-label", data, "--out", "out", "--dino-weights", inputs["weights"], *TINY_DINO, "--no-progress"]
    failed = torchrun(args, tmp_path)
    assert failed.returncode != 0
    lines = {ln for ln in failed.stderr.splitlines() if ln.startswith("uvis pseudo-label: error:")}
    assert len(lines) == 1, failed.stderr  # every process exits with the same line
    assert lines.pop().startswith("uvis pseudo-label: error: rank 1 of 2, video synth_0001: ")
    assert "synth_0001/00001.png: cannot read image" in failed.stderr

    skipped = torchrun([*args, "--skip-bad-videos"], tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout.count("skipped 1 unreadable video(s): synth_0001") == 1
    merged = json.loads((tmp_path / "out" / "pseudo_labels.json").read_text())
    assert [v["name"] for v in merged["videos"]] == ["synth_0000", "synth_0002"]
    assert merged["info"]["skipped_videos"][0]["name"] == "synth_0001"


@pytest.mark.slow
def test_processes_that_do_not_see_the_same_output_folder_are_one_line(inputs, tmp_path):
    """Rank 1 starts in another folder, so the relative --out is another folder for it (as an unshared local
    disk would be on a second machine)."""
    args = ["pseudo-label", inputs["data"], "--out", "out", "--dino-weights", inputs["weights"], *TINY_DINO,
            "--no-progress"]
    (tmp_path / "elsewhere").mkdir()
    result = torchrun(args, tmp_path, UVIS_TEST_CWD_RANK1=str(tmp_path / "elsewhere"))
    assert result.returncode != 0
    lines = {ln for ln in result.stderr.splitlines() if ln.startswith("uvis pseudo-label: error:")}
    assert len(lines) == 1, result.stderr
    line = lines.pop()
    assert "rank 1 on" in line and "cannot see the output folder" in line and "file system every machine" in line
    assert not (tmp_path / "out" / "videos").exists()


# ------------------------------------------------------------------------ watching the others, in-process
def _pair(config):
    """Rank 0 and rank 1 of a job of two, sharing one in-memory store (no process group needed)."""
    from uvis.distributed import DistConfig, DistInfo

    store = torch.distributed.HashStore()
    cfg = DistConfig(heartbeat_s=0.05, poll_s=0.01, **config)
    return [Group(DistInfo(rank=r, world_size=2, grouped=True), store=store, config=cfg) for r in (0, 1)]


def test_a_barrier_names_a_process_that_recorded_a_failure():
    from uvis.distributed import JobFailed

    zero, one = _pair({})
    with one.task("video dog"):
        line = one._record(1, "dog.mp4: cannot decode")
    assert str(line) == "rank 1 of 2, video dog: dog.mp4: cannot decode"
    with pytest.raises(JobFailed, match=r"^rank 1 of 2, video dog: dog.mp4: cannot decode$"):
        zero.barrier()


def test_a_barrier_does_not_wait_forever_for_a_silent_or_stuck_process():
    from uvis.distributed import JobFailed

    zero, one = _pair({"dead_after_s": 0.3})
    one._store.set("current/1", "video cat")  # rank 1 started on cat, then went silent (no heartbeat)
    with pytest.raises(JobFailed, match=r"^rank 1 of 2, video cat: stopped without a word: no heartbeat"):
        zero.barrier()

    zero, one = _pair({"dead_after_s": 30, "stall_after_s": 0.3})
    one._start()  # alive (its heartbeat runs) but it never finishes a frame
    try:
        with pytest.raises(JobFailed, match=r"^rank 1 of 2: made no progress for"):
            zero.barrier()
    finally:
        one._finish()


def test_a_barrier_passes_once_everyone_arrives_and_the_job_bar_counts_every_process():
    import threading

    zero, one = _pair({})
    bar0 = zero.progress(total=5, desc="x", unit="frame", disable=True)
    bar1 = one.progress(total=5, desc="x", unit="frame", disable=True)
    bar0.update(2)
    bar1.update(3)
    assert zero._count(bar0.key) == 5 and bar0.key == bar1.key
    other = threading.Thread(target=one.barrier)
    other.start()
    zero.barrier()
    other.join(timeout=5)
    assert not other.is_alive()


def test_the_job_progress_off_a_terminal_is_rank_0s_log_lines_counting_every_process(capsys, monkeypatch):
    """``Group.progress`` is ``uvis.data.progress`` on rank 0: in a log, timed lines with the job's count."""
    import time

    monkeypatch.setenv("UVIS_PROGRESS_INTERVAL", "0.001")
    zero, one = _pair({})
    bar0 = zero.progress(total=5, desc="segment", unit="frame")
    bar1 = one.progress(total=5, desc="segment", unit="frame")
    bar1.update(3)  # rank 1's frames reach rank 0's display with its own next update
    time.sleep(0.01)  # past the interval
    bar0.update(2)
    bar0.refresh_job()
    assert bar0.bar.n == 5
    bar0.bar.close()
    bar1.bar.close()
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("segment: 5/5 frames (100%)") for line in err), err
    assert err[-1].startswith("segment: done, 5 frames in"), err
    assert all(line.startswith("segment: ") for line in err) and len([e for e in err if "done" in e]) == 1, err


def test_no_progress_silences_the_job_display(capsys):
    zero, one = _pair({})
    bar0 = zero.progress(total=2, desc="naming", unit="mask", disable=True)
    bar0.update(2)
    bar0.bar.close()
    assert capsys.readouterr().err == ""
