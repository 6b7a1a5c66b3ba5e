"""``uvis pseudo-label`` end to end with a tiny random DINO checkpoint in the official layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset, render_video
from uvis.features import backbones
from uvis.pseudo import maskcut as mc
from uvis.pseudo.collection import PseudoLabelConfig, pseudo_label_collection
from uvis.pseudo.format import load_pseudo_labels

TINY = PseudoLabelConfig(backbone="tiny", maskcut=mc.MaskCutConfig(resolution=32, num_masks=2))


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), path)
    return path


@pytest.fixture
def dataset(tmp_path):
    make_dataset(tmp_path / "synth", num_videos=3, num_frames=3, height=24, width=40, seed=1)
    return tmp_path / "synth"


def _cli(*args):
    return main(["pseudo-label", *map(str, args), "--no-progress"])


def test_cli_writes_parts_and_merged_file(tmp_path, tiny_weights, dataset):
    out = tmp_path / "out"
    assert _cli(dataset, "--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32,
                "--num-masks", 2, "--batch-size", 2, "--device", "cpu") == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["1.json", "2.json", "3.json"]
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    assert [v.name for v in labels.videos] == ["synth_0000", "synth_0001", "synth_0002"]
    assert labels.info["config"]["backbone"] == "tiny"
    assert labels.stats["maskcut"]["frames"] == 9
    assert labels.instances, "random features still give some cut"
    per_frame = labels.by_frame()
    assert all(len(v) <= 2 for v in per_frame.values())
    for inst in labels.instances:
        assert mask_utils.area(inst.segmentation) > 0 and 0 <= inst.score <= 1
    for group in per_frame.values():  # masks of one frame are disjoint
        stack = np.stack([mask_utils.decode(i.segmentation) for i in group])
        assert stack.sum(0).max() <= 1


def test_resume_skips_finished_videos(tmp_path, tiny_weights, dataset, monkeypatch):
    calls = []
    real = mc.MaskCut.__call__

    def counting(self, frames):
        calls.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(mc.MaskCut, "__call__", counting)
    out = tmp_path / "out"
    collection = discover(dataset)
    pseudo_label_collection(collection, out, TINY, weights=tiny_weights, device="cpu", progress=False)
    assert sum(calls) == 9
    first = (out / "pseudo_labels.json").read_text()
    calls.clear()
    (out / "videos" / "2.json").unlink()  # as if interrupted during video 2
    (out / "pseudo_labels.json").unlink()
    pseudo_label_collection(collection, out, TINY, weights=tiny_weights, device="cpu", progress=False)
    assert sum(calls) == 3
    assert json.loads((out / "pseudo_labels.json").read_text())["annotations"] == json.loads(first)["annotations"]
    calls.clear()
    pseudo_label_collection(collection, out, TINY, weights=tiny_weights, device="cpu", progress=False)
    assert calls == []


def test_interrupt_keeps_finished_videos(tmp_path, tiny_weights, dataset, monkeypatch):
    real = mc.MaskCut.__call__
    seen = []

    def interrupt_on_second_video(self, frames):
        seen.append(1)
        if len(seen) > 1:
            raise KeyboardInterrupt
        return real(self, frames)

    monkeypatch.setattr(mc.MaskCut, "__call__", interrupt_on_second_video)
    out = tmp_path / "out"
    assert _cli(dataset, "--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32,
                "--batch-size", 3, "--device", "cpu") == 130
    assert [p.name for p in (out / "videos").iterdir()] == ["1.json"]  # no temporary leftovers
    assert not (out / "pseudo_labels.json").exists()


def test_shards_cover_every_video_once(tmp_path, tiny_weights, dataset, capsys):
    out = tmp_path / "out"
    common = ["--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32, "--device", "cpu"]
    assert _cli(dataset, *common, "--shard", "1/2") == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["2.json"]
    assert not (out / "pseudo_labels.json").exists()
    assert "once every shard" in capsys.readouterr().out
    assert _cli(dataset, *common, "--shard", "0/2") == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["1.json", "2.json", "3.json"]
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    assert sorted(v.id for v in labels.videos) == [1, 2, 3]


def test_other_config_is_refused(tmp_path, tiny_weights, dataset, capsys):
    out = tmp_path / "out"
    common = ["--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32, "--device", "cpu"]
    assert _cli(dataset, *common, "--shard", "0/3") == 0
    capsys.readouterr()
    assert _cli(dataset, *common, "--tau", "0.3") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tau 0.15 -> 0.3" in err and "--overwrite" in err
    assert _cli(dataset, *common, "--tau", "0.3", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["maskcut"]["tau"] == 0.3


def test_frame_folder_and_bad_inputs(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t, frame in enumerate(render_video(num_frames=2, height=30, width=20, seed=4).frames):
        Image.fromarray(frame).save(folder / f"{t:03d}.png")
    out = tmp_path / "out"
    common = ["--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32, "--device", "cpu"]
    assert _cli(folder, "--out", out, *common) == 0
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    assert labels.videos[0].file_names == ["clip/000.png", "clip/001.png"]
    bad = [
        ([tmp_path / "missing", "--out", out, *common], "no such file"),
        ([folder, "--out", tmp_path / "o2", *common, "--shard", "3/2"], "shard"),
        ([folder, "--out", tmp_path / "o3", *common[:-4], "--resolution", 36, "--device", "cpu"], "multiple"),
        ([folder, "--out", tmp_path / "o4", "--dino", "tiny", "--dino-weights", tmp_path / "nope.pth"], "not found"),
        ([folder, "--out", tmp_path / "o5", *common, "--num-masks", 0], "--num-masks"),
    ]
    for args, needle in bad:
        assert _cli(*args) == 2, args
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err and "Traceback" not in err


def test_crf_option(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t, frame in enumerate(render_video(num_frames=1, height=30, width=20, seed=4).frames):
        Image.fromarray(frame).save(folder / f"{t:03d}.png")
    args = [folder, "--out", tmp_path / "out", "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32,
            "--device", "cpu", "--crf"]
    if not mc.crf_available():
        assert _cli(*args) == 2
        assert "pydensecrf2" in capsys.readouterr().err
    else:
        assert _cli(*args) == 0
        load_pseudo_labels(tmp_path / "out" / "pseudo_labels.json")


def test_video_file_input(tmp_path, tiny_weights):
    from uvis.data.synthetic import write_video_file

    write_video_file(tmp_path / "vids" / "a.mp4", num_frames=3, height=32, width=48, seed=2)
    write_video_file(tmp_path / "vids" / "b.mp4", num_frames=2, height=32, width=48, seed=3)
    out = pseudo_label_collection(discover(tmp_path / "vids"), tmp_path / "out", TINY, weights=tiny_weights,
                                  device="cpu", progress=False)
    labels = load_pseudo_labels(out)
    assert [(v.name, v.length, v.height, v.width) for v in labels.videos] == [("a", 3, 32, 48), ("b", 2, 32, 48)]


def test_failed_start_does_not_lock_the_folder(tmp_path, tiny_weights, dataset, capsys):
    """A run that stops before any video is labelled (bad --resolution) leaves nothing to protect: fixing the
    flag and rerunning must work without --overwrite."""
    out = tmp_path / "out"
    common = ["--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--device", "cpu"]
    assert _cli(dataset, *common, "--resolution", 36) == 2
    assert "multiple" in capsys.readouterr().err
    assert _cli(dataset, *common, "--resolution", 32) == 0
    assert (out / "pseudo_labels.json").is_file()



def test_other_settings_refused_while_a_shard_labels_its_first_video(tmp_path, tiny_weights, dataset, monkeypatch,
                                                                      capsys):
    """A shard that has started labelling (no part written yet) still protects the folder from other settings."""
    out = tmp_path / "out"
    common = ["--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32, "--device", "cpu"]

    def stop(self, frames):
        raise KeyboardInterrupt  # as if still at work on its first video

    monkeypatch.setattr(mc.MaskCut, "__call__", stop)
    assert _cli(dataset, *common, "--shard", "0/2") == 130
    assert not list(out.glob("videos/*.json"))
    monkeypatch.undo()
    assert _cli(dataset, *common, "--shard", "1/2", "--tau", "0.3") == 2
    assert "other settings" in capsys.readouterr().err

@pytest.mark.parametrize("device", ["gpu", "cuda:x"])
def test_unknown_device_is_one_line(tmp_path, tiny_weights, dataset, capsys, device):
    assert _cli(dataset, "--out", tmp_path / "out", "--dino", "tiny", "--dino-weights", tiny_weights,
                "--resolution", 32, "--device", device) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and device in err and "--device" in err


def test_skip_bad_videos_labels_the_rest_and_retries_on_rerun(tmp_path, tiny_weights, capsys):
    from uvis.data.synthetic import write_video_file

    vids = tmp_path / "vids"
    for name in "abc":
        write_video_file(vids / f"{name}.mp4", num_frames=2, height=32, width=48, seed=2)
    good_b = (vids / "b.mp4").read_bytes()
    (vids / "b.mp4").write_bytes(good_b[: len(good_b) // 2])  # truncated
    out = tmp_path / "out"
    common = [vids, "--out", out, "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32,
              "--device", "cpu"]
    assert _cli(*common) == 2  # default: the bad video stops the run, naming it
    err = capsys.readouterr().err
    assert "b.mp4" in err and len(err.strip().splitlines()) == 1
    assert _cli(*common, "--skip-bad-videos") == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unreadable video(s): b" in printed
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    assert [v.name for v in labels.videos] == ["a", "c"]
    assert [s["name"] for s in labels.info["skipped_videos"]] == ["b"] and "b.mp4" in labels.info["skipped_videos"][0]["error"]
    (vids / "b.mp4").write_bytes(good_b)  # repaired: a rerun labels it and the merged file is complete
    assert _cli(*common, "--skip-bad-videos") == 0
    labels = load_pseudo_labels(out / "pseudo_labels.json")
    assert [v.name for v in labels.videos] == ["a", "b", "c"] and "skipped_videos" not in labels.info
    assert not list((out / "videos").glob("*.failed.json"))


def test_skip_bad_videos_when_none_can_be_read(tmp_path, tiny_weights, capsys):
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "a.mp4").write_bytes(b"")
    (vids / "b.mp4").write_bytes(b"not a video")
    code = _cli(vids, "--out", tmp_path / "out", "--dino", "tiny", "--dino-weights", tiny_weights, "--resolution", 32,
                "--device", "cpu", "--skip-bad-videos")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "none of the 2 videos could be read" in err and "\n" not in err
