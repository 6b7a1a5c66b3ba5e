"""Frame rates of frame folders (--fps, dataset defaults) and the links from results.json to the PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oracle_predictor import OraclePredictor
from uvis.cli import segment as segment_cli
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset, write_video_file
from uvis.data.video import open_video
from uvis.data.ytvis import load_dataset, load_results
from uvis.errors import UserError


def _davis(root: Path, frames: int = 3) -> None:
    for t in range(frames):
        for kind, value in (("JPEGImages", 40 * t), ("Annotations", 0)):
            d = root / kind / "480p" / "seq"
            d.mkdir(parents=True, exist_ok=True)
            m = np.full((12, 16), value, np.uint8)
            if kind == "Annotations":
                m[2:6, 3:9] = 255
                Image.fromarray(m).save(d / f"{t:05d}.png")
            else:
                Image.fromarray(np.stack([m] * 3, -1)).save(d / f"{t:05d}.jpg")


def _rates(path: Path, **kw: float) -> list[float]:
    return [item.open().fps for item in discover(path, **kw).items]


def test_frame_folders_play_at_their_datasets_rate(tmp_path: Path) -> None:
    _davis(tmp_path / "davis")
    assert _rates(tmp_path / "davis") == [24.0]
    synth = tmp_path / "synth"
    make_dataset(synth, num_videos=2, num_frames=3, height=16, width=16)
    assert _rates(synth) == [10.0, 10.0]  # the synthetic writer states its rate (info.fps)
    # a YouTube-VIS JSON without a stated rate: every 5th frame of 30 fps video
    data = json.loads((synth / "annotations.json").read_text())
    del data["info"]["fps"]
    (synth / "ytvis.json").write_text(json.dumps(data))
    assert _rates(synth / "ytvis.json", frames=None) == [6.0, 6.0]
    # plain frame folders: 30 unless told
    folder = synth / "JPEGImages"
    assert _rates(folder) == [30.0, 30.0]
    assert _rates(folder / "synth_0000") == [30.0]
    # --fps wins everywhere frames are folders
    for path in (tmp_path / "davis", synth, folder, folder / "synth_0000"):
        assert set(_rates(path, fps=12.5)) == {12.5}


def test_video_files_keep_their_own_rate(tmp_path: Path) -> None:
    write_video_file(tmp_path / "vids" / "a.mp4", num_frames=4, height=16, width=16, fps=8)
    (tmp_path / "vids" / "frames").mkdir()
    for t in range(3):
        Image.fromarray(np.full((16, 16, 3), 50 * t, np.uint8)).save(tmp_path / "vids" / "frames" / f"{t}.png")
    assert _rates(tmp_path / "vids", fps=5) == [8.0, 5.0]  # a.mp4 first, then the frame folder
    assert _rates(tmp_path / "vids" / "a.mp4", fps=5) == [8.0]


@pytest.mark.parametrize("fps", [0, -3, float("nan"), 5000])
def test_bad_fps_is_a_user_error(tmp_path: Path, fps: float) -> None:
    with pytest.raises(UserError, match="fps="):
        discover(tmp_path, fps=fps)


def test_segment_writes_the_rate_and_links_results_to_the_pngs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "synth"
    dataset = make_dataset(root, num_videos=2, num_frames=6, height=48, width=64, num_objects=3, seed=5)
    monkeypatch.setattr(segment_cli, "load_predictor", lambda *args: OraclePredictor(dataset))
    out = tmp_path / "out"
    # the frame folders as plain folders (no dataset rate): --fps decides
    assert main(["segment", str(root / "JPEGImages"), "--model", "oracle", "--out", str(out), "--no-progress",
                 "--fps", "6"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [v["frame_rate"] for v in summary["per_video"]] == [6.0, 6.0]
    for v in dataset.videos:
        assert open_video(out / "overlays" / f"{v.name}.mp4").fps == pytest.approx(6.0)
        assert json.loads((out / "videos" / f"{v.name}.json").read_text())["summary"]["frame_rate"] == 6.0

    results = json.loads((out / "results.json").read_text())
    assert results and all(set(r) == {"video_id", "category_id", "score", "segmentations", "video", "track_id"}
                           for r in results)
    checked = 0
    for r in results:
        pngs = sorted((out / "masks" / r["video"]).glob("*.png"))
        for png, rle in zip(pngs, r["segmentations"], strict=True):
            if rle is None:
                continue
            ids = np.asarray(Image.open(png))
            mask = mask_utils.decode(rle)
            # the track's pixels in the PNG carry its track_id (where a better track does not overlap it)
            assert (ids == r["track_id"]).any() and np.all(mask[ids == r["track_id"]])
            checked += 1
    assert checked > 0
    # uvis eval reads the file as before: the two extra fields are ignored
    gt = load_dataset(root / "annotations.json")
    assert len(load_results(out / "results.json", gt)) == len(results)
