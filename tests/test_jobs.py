"""uvis.jobs: the one settings check and the one resumable per-video runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from uvis.data.sources import VideoItem
from uvis.errors import UserError
from uvis.jobs import Outcome, VideoJob, check_settings, run_videos, settings_changes

SAVED = {"backbone": "dino_vitb8", "maskcut": {"tau": 0.15, "num_masks": 3}, "steps": 100, "device": "cuda",
         "weights": {"file": "a.pth", "sha256": "0" * 64}}


def test_a_changed_setting_is_refused_with_every_change_in_one_line(tmp_path):
    current = {**SAVED, "maskcut": {"tau": 0.3, "num_masks": 2}, "backbone": "dino_vits16"}
    with pytest.raises(UserError) as e:
        check_settings(SAVED, current, what="the folder holds labels made", folder=tmp_path, fix="use another --out")
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{tmp_path}: the folder holds labels made with other settings (")
    assert "backbone 'dino_vitb8' -> 'dino_vits16'; maskcut.num_masks 3 -> 2; maskcut.tau 0.15 -> 0.3" in text
    assert text.endswith("fix: use another --out")


def test_settings_that_may_change_pass_and_the_rest_do_not():
    current = {**SAVED, "steps": 200, "device": "cpu", "maskcut": {"tau": 0.15, "num_masks": 5}}
    check_settings(SAVED, current, may_change=("steps", "device", "maskcut.num_masks"), what="x", folder=".")
    assert [c.key for c in settings_changes(SAVED, current, may_change=("steps", "device"))] == ["maskcut.num_masks"]
    assert settings_changes(SAVED, current, may_change=("steps", "device", "maskcut")) == []  # a key covers its table
    # tuples and lists compare equal (JSON holds lists); an added or removed setting is a change
    assert settings_changes({"size": [1, 2]}, {"size": (1, 2)}) == []
    assert [str(c) for c in settings_changes({"a": 1}, {"a": 1, "b": True})] == ["b None -> True"]


def test_whole_values_when_not_nested_and_long_values_are_named_alone():
    current = {**SAVED, "weights": {"file": "a.pth", "sha256": "1" * 64}}
    assert [str(c) for c in settings_changes(SAVED, current, nested=False)] == ["weights"]
    assert [str(c) for c in settings_changes(SAVED, current)] == ["weights.sha256"]  # 64 hex digits: too long
    with pytest.raises(UserError, match=r"made with other weights: weights"):
        check_settings(SAVED, current, what="w", folder=".", nested=False,
                       message=lambda changes: "made with other weights: " + ", ".join(str(c) for c in changes))


# ------------------------------------------------------------------------------------------------ the runner
def _videos(tmp_path: Path, lengths: tuple[int, ...] = (3, 5, 2, 4)) -> list[VideoItem]:
    return [VideoItem(i + 1, f"v{i}", tmp_path, [f"v{i}/{t:03d}.jpg" for t in range(n)])
            for i, n in enumerate(lengths)]


def _job(out: Path, calls: list[str], *, fail: set[str] = frozenset(), stop_at: str | None = None) -> VideoJob:
    def work(item: VideoItem, bar: Any) -> dict[str, Any]:
        if item.name == stop_at:
            raise KeyboardInterrupt  # the job is killed while this video is in flight
        if item.name in fail:
            raise UserError("cannot decode", path=item.name)
        calls.append(item.name)
        bar.update(item.known_length())
        return {"format": 1, "name": item.name, "value": sum(len(f) for f in item.file_names) * item.video_id}

    def read(item: VideoItem) -> dict[str, Any] | None:
        path = out / "parts" / f"{item.video_id}.json"
        try:
            part = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            part = None
        if isinstance(part, dict) and part.get("format") == 1:
            return part if part.get("name") == item.name else None
        print(f"{path}: damaged part; doing its video again", file=sys.stderr)
        return None

    return VideoJob(stage="test", part_path=lambda item: out / "parts" / f"{item.video_id}.json", read_part=read,
                    work=work, failed_path=lambda item: out / "parts" / f"{item.video_id}.failed.json")


def _merge(out: Path, videos: list[VideoItem]):
    def merge(outcome: Outcome) -> dict[str, Any]:
        return {item.name: json.loads((out / "parts" / f"{item.video_id}.json").read_text())["value"]
                for item in videos if (out / "parts" / f"{item.video_id}.json").is_file()}
    return merge


def test_a_killed_job_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    videos = _videos(tmp_path)
    whole = run_videos(videos, _job(tmp_path / "whole", []), tmp_path / "whole", progress=False,
                       merge=_merge(tmp_path / "whole", videos))
    assert whole.done_now == ["v0", "v1", "v2", "v3"] and whole.reused == []

    out, calls = tmp_path / "cut", []
    with pytest.raises(KeyboardInterrupt):
        run_videos(videos, _job(out, calls, stop_at="v2"), out, progress=False)
    assert calls == ["v0", "v1"] and not (out / "parts" / "3.json").exists()  # the video in flight has no part
    (out / "parts" / "2.json").write_text('{"format": 1, "na')  # and one part was cut short on disk
    resumed = run_videos(videos, _job(out, calls), out, progress=False, merge=_merge(out, videos))
    assert calls == ["v0", "v1", "v1", "v2", "v3"]  # only the missing and the damaged videos are done again
    assert resumed.reused == ["v0"] and resumed.done_now == ["v1", "v2", "v3"]
    assert "2.json: damaged part" in capsys.readouterr().err
    assert resumed.merged == whole.merged
    again = run_videos(videos, _job(out, calls), out, progress=False, merge=_merge(out, videos))
    assert calls[5:] == [] and again.reused == ["v0", "v1", "v2", "v3"] and again.merged == whole.merged
    # redo: every video again (the caller discards the parts)
    assert run_videos(videos, _job(out, calls), out, progress=False, redo=True).done_now == ["v0", "v1", "v2", "v3"]


def test_skip_bad_records_the_video_and_a_rerun_retries_it(tmp_path, capsys):
    videos, out, calls = _videos(tmp_path), tmp_path / "out", []
    with pytest.raises(UserError, match="cannot decode"):
        run_videos(videos, _job(out, calls, fail={"v1"}), out, progress=False)
    outcome = run_videos(videos, _job(out, calls, fail={"v1"}), out, progress=False, skip_bad=True)
    assert list(outcome.failed) == ["v1"] and "cannot decode" in outcome.failed["v1"]
    assert json.loads((out / "parts" / "2.failed.json").read_text())["name"] == "v1"
    assert "skipped v1: v1: cannot decode" in capsys.readouterr().out  # with a disabled bar: a plain line
    repaired = run_videos(videos, _job(out, calls), out, progress=False, skip_bad=True)
    assert repaired.done_now == ["v1"] and repaired.failed == {} and not (out / "parts" / "2.failed.json").exists()


def test_start_sees_this_process_share_and_check_runs_before_the_merge(tmp_path):
    videos, out, seen = _videos(tmp_path), tmp_path / "out", []

    def refuse(outcome: Outcome) -> None:
        raise UserError("none could be read")

    with pytest.raises(UserError, match="none could be read"):
        run_videos(videos, _job(out, []), out, progress=False, start=lambda mine: seen.append([i.name for i in mine]),
                   check=refuse, merge=lambda outcome: pytest.fail("merged after a refusal"))
    assert seen == [["v0", "v1", "v2", "v3"]]
    run_videos(videos, _job(out, []), out, progress=False, start=lambda mine: seen.append([i.name for i in mine]))
    assert seen[-1] == []  # nothing left to do: e.g. no model is loaded
