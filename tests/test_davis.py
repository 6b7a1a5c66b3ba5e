"""DAVIS import: 2017 palette masks, 2016 binary masks, errors, CLI, and the real DAVIS-2016 subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.davis import load_davis
from uvis.data.ytvis import load_dataset
from uvis.errors import UserError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
H, W = 12, 16


def _palette_png(path: Path, labels: np.ndarray) -> None:
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12)
    im.putpalette(pal)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _frames(root: Path, seq: str, n: int, size=(H, W)) -> None:
    d = root / "JPEGImages" / "480p" / seq
    d.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        Image.fromarray(np.full((*size, 3), 40 * t, np.uint8)).save(d / f"{t:05d}.jpg")


def _davis2017(root: Path) -> dict[str, list[np.ndarray | None]]:
    """Two sequences; 'b-seq' has objects 1 and 3 (no 2), object 3 leaves at frame 2; frame 1 of 'a-seq' unannotated."""
    labels: dict[str, list[np.ndarray | None]] = {}
    a = []
    for t in range(3):
        m = np.zeros((H, W), np.uint8)
        m[2:5, 2 + t:6 + t] = 1
        m[7:10, 8:12] = 2
        a.append(m)
    a[1] = None
    b = []
    for t in range(3):
        m = np.zeros((H, W), np.uint8)
        m[0:3, 0:3] = 1
        if t < 2:
            m[5:8, 5:9] = 3
        b.append(m)
    labels["a-seq"], labels["b-seq"] = a, b
    for seq, maps in labels.items():
        _frames(root, seq, len(maps))
        for t, m in enumerate(maps):
            if m is not None:
                _palette_png(root / "Annotations" / "480p" / seq / f"{t:05d}.png", m)
    return labels


def test_davis2017_palette_instances(tmp_path):
    labels = _davis2017(tmp_path)
    ds = load_davis(tmp_path)
    assert [v.name for v in ds.videos] == ["a-seq", "b-seq"] and [v.id for v in ds.videos] == [1, 2]
    assert ds.frame_root == tmp_path / "JPEGImages" / "480p"
    assert ds.videos[0].file_names == ["a-seq/00000.jpg", "a-seq/00001.jpg", "a-seq/00002.jpg"]
    assert (ds.videos[0].height, ds.videos[0].width) == (H, W)
    assert [c.name for c in ds.categories] == ["object"]
    assert [t.id for t in ds.tracks] == [1, 2, 3, 4]
    a_tracks, b_tracks = ds.tracks_of(1), ds.tracks_of(2)
    assert len(a_tracks) == 2 and len(b_tracks) == 2
    for k, track in zip([1, 2], a_tracks, strict=True):
        assert track.segmentations[1] is None  # frame without annotation
        for t in (0, 2):
            assert np.array_equal(mask_utils.decode(track.segmentations[t]), labels["a-seq"][t] == k)
    obj3 = b_tracks[1]
    assert obj3.segmentations[2] is None
    assert np.array_equal(mask_utils.decode(obj3.segmentations[0]), labels["b-seq"][0] == 3)
    assert all(t.category_id == 1 for t in ds.tracks)


def test_davis2016_binary(tmp_path):
    _frames(tmp_path, "cows", 2)
    for t in range(2):
        m = np.zeros((H, W), np.uint8)
        m[3:9, 4 + t:10 + t] = 255
        p = tmp_path / "Annotations" / "480p" / "cows" / f"{t:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(m, mode="L").save(p)
    ds = load_davis(tmp_path)
    assert len(ds.tracks) == 1
    mask = mask_utils.decode(ds.tracks[0].segmentations[1])
    assert mask.sum() == 36 and mask[3, 5] and not mask[3, 4]


def test_sequences_filter_and_unknown(tmp_path):
    _davis2017(tmp_path)
    ds = load_davis(tmp_path, sequences=["b-seq"])
    assert [v.name for v in ds.videos] == ["b-seq"] and ds.videos[0].id == 1
    with pytest.raises(UserError, match="nope"):
        load_davis(tmp_path, sequences=["nope"])


def test_size_mismatch_is_user_error(tmp_path):
    _frames(tmp_path, "s", 1)
    _palette_png(tmp_path / "Annotations" / "480p" / "s" / "00000.png", np.ones((H + 2, W), np.uint8))
    with pytest.raises(UserError, match="annotation is 16x14 but the frames are 16x12"):
        load_davis(tmp_path)


def test_missing_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_davis(tmp_path / "absent")
    with pytest.raises(UserError, match="JPEGImages/480p"):
        load_davis(tmp_path)


def test_cli_import_davis(tmp_path, capsys):
    _davis2017(tmp_path / "davis")
    out = tmp_path / "gt.json"
    assert main(["import-davis", str(tmp_path / "davis"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 sequences" in printed
    # says how to use the file: its frames are elsewhere and its one category calls for class-agnostic scoring
    assert f"uvis eval {out} RESULTS.json --class-agnostic" in printed
    assert f"--frames {tmp_path / 'davis' / 'JPEGImages' / '480p'}" in printed
    ds = load_dataset(out, tmp_path / "davis" / "JPEGImages" / "480p")
    assert len(ds.tracks) == 4 and json.loads(out.read_text())["categories"][0]["name"] == "object"
    assert main(["import-davis", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DAVIS folder not found" in err


def test_real_davis2016():
    root = SHARED / "data" / "davis2016"
    if not (root / "JPEGImages" / "480p").is_dir():
        pytest.skip(f"real DAVIS-2016 subset not present at {root}")
    ds = load_davis(root)
    assert len(ds.videos) == 10
    assert [v.name for v in ds.videos] == sorted(v.name for v in ds.videos)
    assert all((v.width, v.height) == (854, 480) for v in ds.videos)
    assert len(ds.tracks) == 10  # one foreground object per sequence
    for video in ds.videos:
        (track,) = ds.tracks_of(video.id)
        assert len(track.segmentations) == video.length
        assert all(s is not None and mask_utils.area(s) > 0 for s in track.segmentations)
    assert (ds.frame_root / ds.videos[0].file_names[0]).is_file()


def test_palette_void_index_is_not_an_object(tmp_path):
    """DAVIS-2017 / YouTube-VOS palette masks mark void (ignore) pixels with index 255: background, not object 255."""
    _frames(tmp_path, "void-seq", 2)
    maps = []
    for t in range(2):
        m = np.zeros((H, W), np.uint8)
        m[2:6, 2:6] = 1
        m[7:11, 9:14] = 2
        m[1, :] = 255  # a void band, and a void border around object 1
        m[6, 2:6] = 255
        maps.append(m)
        _palette_png(tmp_path / "Annotations" / "480p" / "void-seq" / f"{t:05d}.png", m)
    ds = load_davis(tmp_path)
    assert len(ds.tracks) == 2
    for k, track in zip([1, 2], ds.tracks, strict=True):
        for t in range(2):
            assert np.array_equal(mask_utils.decode(track.segmentations[t]), maps[t] == k)
