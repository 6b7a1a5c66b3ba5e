"""A corpus of broken and unusual inputs, generated here: each one works or fails with one clear line.

Rules checked for every failure: a ``UserError`` (never a traceback), a single line that names the input,
exit status 2 with one stderr line on the CLI, and no output file (not even a temporary one) left behind.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.davis import load_davis
from uvis.data.video import open_video, read_image, resize, resize_short_side, write_video
from uvis.data.ytvis import load_dataset, load_results
from uvis.errors import UserError
from uvis.pseudo.format import load_pseudo_labels

REPO = Path(__file__).resolve().parents[1]
LATIN = "caf\xe9"  # 'café' written in latin-1: one byte 0xE9, not valid UTF-8


def _one_line_naming(err: UserError, path: Path | str) -> str:
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    assert str(path) in text, text
    return text


def _frames(n: int, h: int = 16, w: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _latin_path(folder: Path, stem: str, suffix: str) -> Path:
    """A path whose last component is not valid UTF-8 (Python holds it with surrogate escapes)."""
    raw = os.fsencode(folder) + b"/" + stem.encode("latin-1") + suffix.encode()
    path = Path(os.fsdecode(raw))
    assert "\udce9" in str(path)
    return path


# --- video files -------------------------------------------------------------------------------------


def test_truncated_mp4_is_one_line(tmp_path):
    good = write_video(tmp_path / "good.mp4", _frames(6))
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(UserError) as err:
        open_video(bad).read_all()
    _one_line_naming(err.value, bad)


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty") as err:
        open_video(empty)
    _one_line_naming(err.value, empty)


def test_one_frame_video_reads_one_frame(tmp_path):
    frame = _frames(1, 32, 48)[0]
    video = open_video(write_video(tmp_path / "one.mp4", [frame]))
    frames = video.read_all()
    assert len(video) == 1 and frames.shape == (1, 32, 48, 3)
    assert np.abs(frames[0].astype(int) - frame.astype(int)).mean() < 60  # lossy codec, same picture size


def test_one_frame_folder(tmp_path):
    Image.fromarray(_frames(1)[0]).save(tmp_path / "0.png")
    assert open_video(tmp_path).read_all().shape == (1, 16, 24, 3)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_greyscale_and_alpha_frames_come_out_rgb(tmp_path, ext):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    images = [Image.fromarray(grey, "L")]
    if ext == "png":  # JPEG has no alpha channel
        images += [Image.fromarray(rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), "RGBA"),
                   Image.fromarray(rng.integers(0, 256, (10, 12, 2), dtype=np.uint8), "LA")]
    else:
        images += [Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert("CMYK")]
    for i, im in enumerate(images):
        im.save(tmp_path / f"{i:03d}.{ext}")
    frames = open_video(tmp_path).read_all()
    assert frames.shape == (len(images), 10, 12, 3) and frames.dtype == np.uint8
    first = frames[0].astype(int)
    assert (first[..., 0] == first[..., 1]).all() and (first[..., 1] == first[..., 2]).all()  # grey stays grey
    if ext == "png":
        assert (frames[0][..., 0] == grey).all()  # lossless: exact


def test_one_pixel_frames_read_and_resize(tmp_path):
    """A 1x1 video is useless for segmentation, but reading, writing and resizing it must not crash."""
    folder = tmp_path / "px"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((1, 1, 3), 50 * i, np.uint8)).save(folder / f"{i}.png")
    video = open_video(folder)
    assert (video.height, video.width) == (1, 1) and video.read_all().shape == (2, 1, 1, 3)
    assert resize(video.read_all()[0], (4, 5)).shape == (4, 5, 3)
    assert resize_short_side(video.read_all()[0], 16, max_long=32).shape == (16, 16, 3)
    # yuv420p needs at least 2x2: written stretched to 2x2, as write_video documents
    out = open_video(write_video(tmp_path / "px.mp4", video)).read_all()
    assert out.shape == (2, 2, 2, 3)


@pytest.mark.parametrize(("h", "w"), [(3, 4001), (4001, 3)])
def test_extreme_aspect_frames(tmp_path, h, w):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = 200
    small = resize_short_side(frame, 16, max_long=64)
    assert max(small.shape[:2]) <= 64 and min(small.shape[:2]) >= 1
    Image.fromarray(frame).save(tmp_path / "0.png")
    assert open_video(tmp_path).read_all().shape == (1, h, w, 3)
    # odd sides lose their last row/column (yuv420p needs even sizes)
    back = open_video(write_video(tmp_path / "v.mp4", [frame, frame])).read_all()
    assert back.shape == (2, h - h % 2, w - w % 2, 3)


def test_mixed_frame_sizes_in_a_folder(tmp_path):
    Image.fromarray(_frames(1, 16, 24)[0]).save(tmp_path / "0.png")
    Image.fromarray(_frames(1, 16, 26)[0]).save(tmp_path / "1.png")
    with pytest.raises(UserError, match="same size") as err:
        open_video(tmp_path)
    text = _one_line_naming(err.value, tmp_path)
    assert "1.png" in text


def test_non_utf8_frame_name_in_a_folder(tmp_path):
    for i, frame in enumerate(_frames(2)):
        path = tmp_path / f"{i}.png" if i == 0 else _latin_path(tmp_path, f"1{LATIN}", ".png")
        Image.fromarray(frame).save(path, format="PNG")
    video = open_video(tmp_path)
    assert len(video) == 2 and video.read_all().shape == (2, 16, 24, 3)


def test_non_utf8_video_file_name(tmp_path):
    src = write_video(tmp_path / "src.mp4", _frames(3))
    path = _latin_path(tmp_path, LATIN, ".mp4")
    os.rename(src, path)
    video = open_video(path)
    assert video.read_all().shape == (3, 16, 24, 3)
    # writing to such a name works too, and errors about it print as one line
    out = write_video(_latin_path(tmp_path, "out" + LATIN, ".mp4"), _frames(2))
    assert len(open_video(out)) == 2
    broken = _latin_path(tmp_path, "broken" + LATIN, ".mp4")
    broken.write_bytes(b"not a video at all")
    with pytest.raises(UserError) as err:
        open_video(broken)
    _one_line_naming(err.value, broken)


def test_sub_folder_named_like_an_image_is_not_a_frame(tmp_path):
    (tmp_path / "sub.jpg").mkdir()
    Image.fromarray(_frames(1)[0]).save(tmp_path / "0.png")
    assert open_video(tmp_path).frame_names == ["0.png"]


def test_broken_image_is_one_line(tmp_path):
    bad = tmp_path / "0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(UserError) as err:
        read_image(bad)
    _one_line_naming(err.value, bad)


# --- outputs are all-or-nothing ---------------------------------------------------------------------


def test_failing_write_video_leaves_nothing(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def frames_then_crash():
        yield _frames(1)[0]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        write_video(out_dir / "a.mp4", frames_then_crash())
    with pytest.raises(UserError, match="no frames"):
        write_video(out_dir / "b.mp4", [])
    with pytest.raises(ValueError):
        write_video(out_dir / "c.mp4", [np.zeros((4, 4, 2), np.uint8)])
    assert list(out_dir.iterdir()) == []


def test_output_onto_a_folder_or_under_a_file(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    (tmp_path / "plain").write_text("x")
    for out in (tmp_path / "taken.mp4", tmp_path / "plain" / "v.mp4"):
        with pytest.raises(UserError) as err:
            write_video(out, _frames(1))
        _one_line_naming(err.value, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "taken.mp4"]
    assert list((tmp_path / "taken.mp4").iterdir()) == []


# --- DAVIS import through the CLI -----------------------------------------------------------------


def _davis(root: Path, seq: str = "blob", n: int = 2, ann_size: tuple[int, int] = (16, 24)) -> Path:
    frames = root / "JPEGImages" / "480p" / seq
    anns = root / "Annotations" / "480p" / seq
    frames.mkdir(parents=True)
    anns.mkdir(parents=True)
    for i, frame in enumerate(_frames(n)):
        Image.fromarray(frame).save(frames / f"{i:05d}.jpg")
        mask = np.zeros(ann_size, np.uint8)
        mask[2:6, 3 + i : 9 + i] = 255
        Image.fromarray(mask, "L").save(anns / f"{i:05d}.png")
    return root


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("case", ["annotation size", "broken png", "no frames", "missing root"])
def test_import_davis_failures_exit_2_and_write_nothing(tmp_path, capsys, case):
    root = tmp_path / "davis"
    if case == "annotation size":
        _davis(root, ann_size=(8, 8))
    elif case == "broken png":
        _davis(root)
        (root / "Annotations" / "480p" / "blob" / "00001.png").write_bytes(b"garbage")
    elif case == "no frames":
        (root / "JPEGImages" / "480p" / "empty").mkdir(parents=True)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = _cli(["import-davis", str(root), "--out", str(out_dir / "gt.json")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("uvis import-davis: error: ") and str(root) in err
    assert list(out_dir.iterdir()) == []


def test_import_davis_out_is_a_folder(tmp_path, capsys):
    root = _davis(tmp_path / "davis")
    code, _, err = _cli(["import-davis", str(root), "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is a folder" in err


def test_import_davis_with_non_utf8_sequence_name(tmp_path, capsys):
    root = tmp_path / "davis"
    seq = os.fsdecode(LATIN.encode("latin-1"))
    _davis(root, seq=seq)
    out = _latin_path(tmp_path, "gt" + LATIN, ".json")
    code, stdout, _ = _cli(["import-davis", str(root), "--out", str(out)], capsys)
    assert code == 0 and "1 sequences" in stdout
    ds = load_dataset(out, frame_root=root / "JPEGImages" / "480p")
    assert ds.videos[0].name == seq and len(ds.tracks) == 1
    assert read_image(ds.frame_paths(ds.videos[0])[1]).shape == (16, 24, 3)


def test_cli_subprocess_prints_undecodable_paths_without_crashing(tmp_path):
    """Under a strict UTF-8 locale, printing a surrogate-escaped path must not raise UnicodeEncodeError."""
    root = _davis(tmp_path / "davis")
    out = _latin_path(tmp_path, "gt" + LATIN, ".json")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    ok = subprocess.run([sys.executable, "-m", "uvis", "import-davis", str(root), "--out", os.fsencode(out)],
                        env=env, capture_output=True)
    assert ok.returncode == 0, ok.stderr.decode(errors="replace")
    assert b"Traceback" not in ok.stderr and out.is_file()
    missing = _latin_path(tmp_path, "nothing" + LATIN, "")
    bad = subprocess.run([sys.executable, "-m", "uvis", "import-davis", os.fsencode(missing), "--out", "x.json"],
                         env=env, capture_output=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1 and b"Traceback" not in bad.stderr
    assert not (tmp_path / "x.json").exists()


def test_load_davis_errors_are_one_line(tmp_path):
    root = _davis(tmp_path / "davis", ann_size=(8, 8))
    with pytest.raises(UserError) as err:
        load_davis(root)
    _one_line_naming(err.value, root)


# --- JSON with wrong shapes ---------------------------------------------------------------------------

H, W = 4, 6
_MASK = np.zeros((H, W), bool)
_MASK[1:3, 2:4] = True
RLE = mask_utils.encode(_MASK)


def _gt() -> dict:
    return {
        "videos": [{"id": 1, "width": W, "height": H, "length": 2, "file_names": ["v/0.jpg", "v/1.jpg"]}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [RLE, None],
                         "areas": [4, None]}],
    }


def _edit(fn) -> dict:
    gt = copy.deepcopy(_gt())
    fn(gt)
    return gt


def _seg(value):
    return lambda g: g["annotations"][0]["segmentations"].__setitem__(0, value)


GT_CASES = {
    "list at top": (lambda g: g.clear(), "top level is not an object"),  # replaced by a list below
    "videos is a dict": (lambda g: g.update(videos={"id": 1}), "'videos' is not a list"),
    "video is a string": (lambda g: g.update(videos=["v"]), "videos[0] has no"),
    "width is a string": (lambda g: g["videos"][0].update(width="6"), "'width' is '6', not a number"),
    "width is fractional": (lambda g: g["videos"][0].update(width=6.5), "not a whole number"),
    "width is a list": (lambda g: g["videos"][0].update(width=[6]), "not a number"),
    "width is zero": (lambda g: g["videos"][0].update(width=0), "not positive"),
    "height is negative": (lambda g: g["videos"][0].update(height=-4), "not positive"),
    "file_names is a string": (lambda g: g["videos"][0].update(file_names="v/0.jpg"), "'file_names' is not a list"),
    "file name is a number": (lambda g: g["videos"][0].update(file_names=[0, 1]), "file_names[0] is 0"),
    "file name is a list": (lambda g: g["videos"][0].update(file_names=[["a"], "b"]), "file_names[0]"),
    "video name is a list": (lambda g: g["videos"][0].update(name=["v"]), "'name' is ['v'], not a string"),
    "categories is a dict": (lambda g: g.update(categories={"id": 1}), "'categories' is not a list"),
    "category name is an object": (lambda g: g["categories"][0].update(name={"en": "cat"}), "not a string"),
    "annotations is a dict": (lambda g: g.update(annotations={"a": 1}), "'annotations' is not a list"),
    "annotation is a string": (lambda g: g.update(annotations=["a"]), "annotations[0] has no"),
    "video_id is a string": (lambda g: g["annotations"][0].update(video_id="1"), "'video_id' is '1'"),
    "iscrowd is a word": (lambda g: g["annotations"][0].update(iscrowd="no"), "'iscrowd' is 'no'"),
    "segmentations is a dict": (lambda g: g["annotations"][0].update(segmentations={"0": RLE}), "not a list"),
    "segmentations is null": (lambda g: g["annotations"][0].update(segmentations=None), "not a list"),
    "too few segmentations": (lambda g: g["annotations"][0].update(segmentations=[RLE]), "1 segmentations"),
    "mask is a number": (_seg(5), "frame 0: unreadable mask"),
    "mask is a string": (_seg("abc"), "frame 0: unreadable mask"),
    "RLE size is a string": (_seg({"size": "46", "counts": RLE["counts"]}), "unreadable mask"),
    "RLE size has strings": (_seg({"size": ["4", "6"], "counts": RLE["counts"]}), "unreadable mask"),
    "RLE size too short": (_seg({"size": [4], "counts": RLE["counts"]}), "unreadable mask"),
    "RLE without counts": (_seg({"size": [H, W]}), "unreadable mask"),
    "RLE counts is a number": (_seg({"size": [H, W], "counts": 5}), "unreadable mask"),
    "RLE counts list of strings": (_seg({"size": [H, W], "counts": ["a"]}), "unreadable mask"),
    "RLE counts too long": (_seg({"size": [H, W], "counts": [100]}), "cover 100 pixels"),
    "RLE counts too short": (_seg({"size": [H, W], "counts": [3, 2]}), "cover 5 pixels"),
    "RLE counts negative": (_seg({"size": [H, W], "counts": [-3, 27]}), "unreadable mask"),
    "RLE string too short": (_seg({"size": [H, W], "counts": "0"}), "cover 0 pixels"),
    "RLE string garbage": (_seg({"size": [H, W], "counts": "zzzz"}), "unreadable mask"),
    "RLE string not ascii": (_seg({"size": [H, W], "counts": "\u00e9\u00e9"}), "unreadable mask"),
    "RLE of another size": (_seg(mask_utils.encode(np.zeros((H + 1, W), bool))), "mask size (5, 6)"),
    "polygon odd length": (_seg([[1, 2, 3]]), "odd number of coordinates"),
    "polygon of strings": (_seg([["a", "b", "c", "d", "e", "f"]]), "unreadable mask"),
    "polygon nested too deep": (_seg([[[1, 2], [3, 4], [5, 6]]]), "unreadable mask"),
    "polygon of objects": (_seg([{"x": 1}]), "unreadable mask"),
    "info is a list": (lambda g: g.update(info=["x"]), "'info' is list, not an object"),
    "width is NaN": (lambda g: g["videos"][0].update(width=float("nan")), "not a number"),
}


@pytest.mark.parametrize("case", list(GT_CASES))
def test_ground_truth_with_wrong_shapes(tmp_path, case):
    edit, message = GT_CASES[case]
    data = [_gt()] if case == "list at top" else _edit(edit)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        load_dataset(path)
    text = _one_line_naming(err.value, path)
    assert message in text


def test_ground_truth_accepts_integral_floats_and_stored_areas_of_any_shape(tmp_path):
    data = _edit(lambda g: (g["videos"][0].update(width=6.0), g["annotations"][0].update(areas="n/a")))
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    ds = load_dataset(path)
    assert ds.videos[0].width == 6 and isinstance(ds.videos[0].width, int)
    assert ds.tracks[0].areas is None  # recomputed from the masks


RESULT_CASES = {
    "a dict": ({"video_id": 1}, "results must be a JSON list"),
    "item is a string": (["x"], "result [0] has no"),
    "score is a word": ([{"score": "high"}], "'score' is 'high'"),
    "score is NaN": ([{"score": float("nan")}], "'score' is nan"),
    "score is a list": ([{"score": [0.5]}], "not a number"),
    "segmentations is null": ([{"segmentations": None}], "'segmentations' is not a list"),
    "mask of another size": ([{"segmentations": [mask_utils.encode(np.zeros((5, 6), bool)), None]}], "mask size"),
    "bad RLE": ([{"segmentations": [{"size": [H, W], "counts": [1]}, None]}], "unreadable mask"),
}


@pytest.mark.parametrize("case", list(RESULT_CASES))
def test_results_with_wrong_shapes(tmp_path, case):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_gt()))
    gt = load_dataset(gt_path)
    patch, message = RESULT_CASES[case]
    base = {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [RLE, None]}
    data = [{**base, **p} if isinstance(p, dict) else p for p in patch] if isinstance(patch, list) else patch
    path = tmp_path / "res.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        load_results(path, gt)
    assert message in _one_line_naming(err.value, path)


def _pseudo() -> dict:
    return {"videos": _gt()["videos"], "categories": [],
            "annotations": [{"video_id": 1, "frame_index": 0, "segmentation": RLE, "score": 0.5}]}


def _pedit(fn) -> dict:
    data = copy.deepcopy(_pseudo())
    fn(data)
    return data


PSEUDO_CASES = {
    "videos is a dict": (lambda p: p.update(videos={"a": 1}), "'videos' is not a list"),
    "width is a word": (lambda p: p["videos"][0].update(width="six"), "'width' is 'six'"),
    "annotations is a dict": (lambda p: p.update(annotations={"a": 1}), "'annotations' is not a list"),
    "annotation is a string": (lambda p: p.update(annotations=["x"]), "annotations[0] has no"),
    "score is a word": (lambda p: p["annotations"][0].update(score="hi"), "'score' is 'hi'"),
    "frame_index is a word": (lambda p: p["annotations"][0].update(frame_index="a"), "'frame_index' is 'a'"),
    "frame_index out of range": (lambda p: p["annotations"][0].update(frame_index=2), "outside video"),
    "segmentation is a list": (lambda p: p["annotations"][0].update(segmentation=[1, 2]), "not a compressed RLE"),
    "segmentation counts is a number": (lambda p: p["annotations"][0].update(segmentation={"size": [H, W], "counts": 5}),
                                        "not a compressed RLE"),
    "mask of another size": (lambda p: p["annotations"][0].update(segmentation=mask_utils.encode(np.zeros((5, 6), bool))),
                             "mask size"),
    "RLE runs stop short": (lambda p: p["annotations"][0].update(segmentation={"size": [H, W], "counts": "0"}),
                            "annotations[0]: unreadable mask (RLE runs cover 0 pixels"),
    "category_id is a word": (lambda p: p["annotations"][0].update(category_id="x"), "'category_id' is 'x'"),
    "categories is a dict": (lambda p: p.update(categories={"x": 1}), "'categories' is not a list"),
    "category without name": (lambda p: p.update(categories=[{"id": 1}]), "categories[0] has no 'name'"),
    "stats is a string": (lambda p: p.update(stats="x"), "'stats' is str, not an object"),
    "video listed twice": (lambda p: p["videos"].append(dict(p["videos"][0])), "video id 1 is listed twice"),
    "category listed twice": (lambda p: p.update(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]),
                              "category id 1 is listed twice"),
}


@pytest.mark.parametrize("case", list(PSEUDO_CASES))
def test_pseudo_labels_with_wrong_shapes(tmp_path, case):
    edit, message = PSEUDO_CASES[case]
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(_pedit(edit)))
    with pytest.raises(UserError) as err:
        load_pseudo_labels(path)
    assert message in _one_line_naming(err.value, path)


def test_pseudo_labels_good_file_loads(tmp_path):
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(_pseudo()))
    labels = load_pseudo_labels(path)
    assert len(labels.instances) == 1 and labels.instances[0].category_id is None


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_eval_cli_bad_files_exit_2_one_line(tmp_path, capsys, which):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_gt()))
    pred_path = tmp_path / "pred.json"
    pred_path.write_text(json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [RLE, None]}]))
    bad = gt_path if which == "gt" else pred_path
    bad.write_text(json.dumps(_edit(_seg({"size": [H, W], "counts": [3]}))) if which == "gt"
                   else json.dumps([{"video_id": 1, "category_id": 1, "score": "x", "segmentations": [None, None]}]))
    code, _, err = _cli(["eval", str(gt_path), str(pred_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(bad) in err and err.startswith("uvis eval: error: ")


def test_eval_cli_short_rle_in_predictions_is_an_error_not_a_hang(tmp_path, capsys):
    """pycocotools' IoU loops forever on an RLE whose runs stop short of h*w pixels: it must be refused."""
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_gt()))
    short = {"size": [H, W], "counts": [2, 5]}  # 7 of 24 pixels, overlapping the object's box
    pred_path = tmp_path / "pred.json"
    pred_path.write_text(json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [short, None]}]))
    code, _, err = _cli(["eval", str(gt_path), str(pred_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "result [0], frame 0: unreadable mask" in err
    assert "cover 7 pixels" in err
