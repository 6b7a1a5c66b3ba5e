"""Synthetic datasets and DAVIS folders are found by input discovery and their frames open."""

from __future__ import annotations

import numpy as np
from PIL import Image

from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset, write_video_file


def test_discover_synthetic_dataset_folder(tmp_path):
    ds = make_dataset(tmp_path / "syn", num_videos=2, num_frames=3, height=24, width=32, seed=1)
    col = discover(tmp_path / "syn")
    assert col.dataset is not None and len(col) == 2
    assert [i.name for i in col.items] == [v.name for v in ds.videos]
    frames = col.items[1].open().read_all()
    assert frames.shape == (3, 24, 32, 3)
    expected = np.asarray(Image.open(ds.frame_root / ds.videos[1].file_names[2]))
    assert np.array_equal(frames[2], expected)


def test_discover_davis_folder_and_video_file(tmp_path):
    root = tmp_path / "davis"
    for seq in ("s1", "s2"):
        (root / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        (root / "Annotations" / "480p" / seq).mkdir(parents=True)
        for t in range(2):
            Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg")
            m = np.zeros((8, 10), np.uint8)
            m[2:5, 2:5] = 255
            Image.fromarray(m, mode="L").save(root / "Annotations" / "480p" / seq / f"{t:05d}.png")
    col = discover(root)
    assert col.dataset is not None and len(col.dataset.tracks) == 2
    assert col.items[0].open().read_all().shape == (2, 8, 10, 3)
    write_video_file(tmp_path / "clip.mp4", num_frames=4, seed=0)
    assert len(discover(tmp_path / "clip.mp4").items[0].open()) == 4


def test_frame_root_for_inputs_other_than_a_ytvis_json_is_a_user_error(tmp_path, capsys):
    """--frames is the frame root of a YouTube-VIS JSON; for a frame folder, a DAVIS folder or a video file it
    used to be silently ignored."""
    import pytest

    from uvis.cli.main import main
    from uvis.errors import UserError

    ds = make_dataset(tmp_path / "syn", num_videos=1, num_frames=2, height=16, width=16, seed=0)
    folder = ds.frame_root / ds.videos[0].file_names[0].split("/")[0]
    write_video_file(tmp_path / "clip.mp4", num_frames=2, seed=0)
    for data in (tmp_path / "syn", folder, tmp_path / "clip.mp4"):
        with pytest.raises(UserError, match="only applies to a YouTube-VIS JSON"):
            discover(data, frames=tmp_path)
    # the JSON itself still takes it
    assert len(discover(tmp_path / "syn" / "annotations.json", frames=ds.frame_root)) == 1
    code = main(["pseudo-label", str(folder), "--frames", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--frames" in err and len(err.strip().splitlines()) == 1
