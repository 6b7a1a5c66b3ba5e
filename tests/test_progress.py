"""Progress in logs: when the output is not a terminal, a line at a fixed interval with done, rate and ETA."""

from __future__ import annotations

import io

import numpy as np
import pytest

from uvis.data.progress import LogProgress, format_duration, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_at_fixed_interval_with_rate_and_eta() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(100, "segment bear", "frame", interval=30.0, stream=out, clock=clock)
    for _ in range(10):  # 10 frames a batch, one batch every 10 s: 1 frame/s
        clock.now += 10
        bar.update(10)
    bar.close()
    lines = out.getvalue().splitlines()
    # printed at 30, 60 and 90 s (interval 30), then the closing line
    assert lines[:3] == [
        "segment bear: 30/100 frames (30%), 1 frames/s, ETA 1m10s",
        "segment bear: 60/100 frames (60%), 1 frames/s, ETA 40s",
        "segment bear: 90/100 frames (90%), 1 frames/s, ETA 10s",
    ]
    assert lines[3] == "segment bear: done, 100 frames in 1m40s (1 frames/s)"
    assert len(lines) == 4


def test_unknown_total_and_resumed_counts() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(None, "maskcut", "frame", interval=5.0, stream=out, clock=clock)
    clock.now += 5
    bar.update(20)
    assert out.getvalue().splitlines() == ["maskcut: 20 frames, 4 frames/s"]
    out2 = io.StringIO()
    train = LogProgress(1000, "train", "step", initial=400, interval=1.0, stream=out2, clock=clock)
    clock.now += 10
    train.update(100)  # 100 steps in 10 s since the resume: the 400 earlier steps are not in the rate
    assert out2.getvalue().splitlines() == ["train: 500/1000 steps (50%), 10 steps/s, ETA 50s"]


def test_a_terminal_gets_a_bar_a_file_gets_lines_disabled_gets_nothing() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    from tqdm import tqdm

    bar = progress(10, "x", stream=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress(10, "x", stream=io.StringIO()), LogProgress)
    quiet = progress(10, "x", enabled=False)
    quiet.update(5)
    quiet.close()


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UVIS_PROGRESS_INTERVAL", "2.5")
    assert progress(10, "x", stream=io.StringIO()).interval == 2.5
    monkeypatch.setenv("UVIS_PROGRESS_INTERVAL", "soon")
    assert progress(10, "x", stream=io.StringIO()).interval == 30.0


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (59, "59s"), (61, "1m01s"), (7500, "2h05m"),
                                                (float("nan"), "?")])
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_segment_logs_frame_lines_when_not_a_terminal(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The per-frame progress of one video reaches a log (on main, a 13-minute job showed only 'videos 0/1')."""
    from oracle_predictor import OraclePredictor
    from uvis.data.synthetic import make_dataset
    from uvis.data.video import open_video
    from uvis.track.segmenter import Segmenter

    monkeypatch.setenv("UVIS_PROGRESS_INTERVAL", "1e-9")  # a line per batch
    ds = make_dataset(tmp_path, num_videos=1, num_frames=6, height=48, width=64, seed=3)
    video = open_video(ds.frame_root / ds.videos[0].name, title="clip")
    Segmenter(OraclePredictor(ds)).segment(video, batch_size=2, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(", ")[0] for line in err[:3]] == [f"segment clip: {n}/6 frames ({round(100 * n / 6)}%)"
                                                         for n in (2, 4, 6)]
    assert all(" frames/s, ETA " in line for line in err[:3])
    assert np.isfinite(float(err[0].split(", ")[1].split()[0]))
    assert err[-1].startswith("segment clip: done, 6 frames in")
