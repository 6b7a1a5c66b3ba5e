"""YouTube-VIS files: load/save round trips and a one-line error for each kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uvis.data import masks as mask_utils
from uvis.data.ytvis import Category, Dataset, Track, Video, load_dataset, load_results, save_results
from uvis.errors import UserError

H, W = 6, 8


def _mask(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _gt() -> dict:
    return {
        "info": {"description": "tiny"},
        "videos": [
            {"id": 1, "width": W, "height": H, "length": 2, "file_names": ["a/0.jpg", "a/1.jpg"], "name": "a"},
            {"id": 2, "width": W, "height": H, "length": 3, "file_names": ["b/0.jpg", "b/1.jpg", "b/2.jpg"]},
        ],
        "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 5, "name": "dog"}],
        "annotations": [
            {"id": 10, "video_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentations": [mask_utils.encode(_mask(0, 2, 0, 2)), None]},
            {"id": 11, "video_id": 2, "category_id": 5,
             "segmentations": [None, [[1, 1, 5, 1, 5, 4, 1, 4]], mask_utils.encode(_mask(3, 6, 4, 8))]},
        ],
    }


def _write(tmp_path: Path, obj, name="gt.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_load_dataset(tmp_path):
    ds = load_dataset(_write(tmp_path, _gt()), frame_root=tmp_path / "frames")
    assert [v.id for v in ds.videos] == [1, 2] and ds.video(2).length == 3
    assert ds.videos[0].name == "a" and ds.videos[1].name == "b"  # name from the frame folder
    assert ds.category_names() == {1: "cat", 5: "dog"}
    assert [t.id for t in ds.tracks] == [10, 11]
    t = ds.tracks_of(2)[0]
    assert t.segmentations[0] is None and isinstance(t.segmentations[1]["counts"], str)  # polygons -> RLE
    assert np.array_equal(mask_utils.decode(t.segmentations[2]), _mask(3, 6, 4, 8))
    assert ds.frame_paths(ds.video(1)) == [tmp_path / "frames" / "a/0.jpg", tmp_path / "frames" / "a/1.jpg"]


def test_save_load_round_trip(tmp_path):
    ds = load_dataset(_write(tmp_path, _gt()))
    ds.save(tmp_path / "out" / "again.json")
    raw = json.loads((tmp_path / "out" / "again.json").read_text())
    assert raw["annotations"][0]["areas"] == [4.0, None]
    assert raw["annotations"][0]["bboxes"][0] == [0.0, 0.0, 2.0, 2.0]
    assert raw["videos"][0]["length"] == 2
    back = load_dataset(tmp_path / "out" / "again.json")
    assert back.to_json() == ds.to_json()
    with pytest.raises(UserError, match="has no frame folder"):
        back.frame_paths(back.videos[0])


def test_built_dataset_round_trip(tmp_path):
    ds = Dataset(
        videos=[Video(id=3, width=W, height=H, file_names=["x/0.png"], name="x")],
        tracks=[Track(video_id=3, category_id=1, segmentations=[mask_utils.encode(_mask(1, 3, 1, 3))], id=1)],
        categories=[Category(id=1, name="thing")],
    )
    ds.save(tmp_path / "d.json")
    back = load_dataset(tmp_path / "d.json")
    assert back.tracks[0].segmentations == ds.tracks[0].segmentations and back.videos[0].name == "x"


def test_test_split_without_annotations(tmp_path):
    gt = _gt()
    del gt["annotations"]
    assert load_dataset(_write(tmp_path, gt)).tracks == []


def test_results_round_trip(tmp_path):
    ds = load_dataset(_write(tmp_path, _gt()))
    preds = [Track(video_id=2, category_id=5, score=0.7,
                   segmentations=[None, mask_utils.encode(_mask(0, 1, 0, 1)), None])]
    save_results(tmp_path / "res.json", preds)
    back = load_results(tmp_path / "res.json", ds)
    assert len(back) == 1 and back[0].score == pytest.approx(0.7) and back[0].segmentations == preds[0].segmentations


def _edit(fn):
    gt = _gt()
    fn(gt)
    return gt


ERRORS = [
    ("no videos", lambda g: g.pop("videos"), "the file has no 'videos' key"),
    ("no categories", lambda g: g.pop("categories"), "the file has no 'categories' key"),
    ("video without id", lambda g: g["videos"][1].pop("id"), "videos[1] has no 'id' key"),
    ("video without file_names", lambda g: g["videos"][0].pop("file_names"), "videos[0] has no 'file_names' key"),
    ("width not a number", lambda g: g["videos"][0].update(width="wide"), "videos[0]: 'width' is 'wide', not a number"),
    ("category without name", lambda g: g["categories"][1].pop("name"), "categories[1] has no 'name' key"),
    ("annotation without video_id", lambda g: g["annotations"][1].pop("video_id"),
     "annotations[1] has no 'video_id' key"),
    ("annotation without segmentations", lambda g: g["annotations"][0].pop("segmentations"),
     "annotations[0] has no 'segmentations' key"),
    ("wrong segmentation length", lambda g: g["annotations"][0]["segmentations"].append(None),
     "annotations[0]: 3 segmentations but video 1 has 2 frames"),
    ("segmentations not a list", lambda g: g["annotations"][0].update(segmentations="x"),
     "annotations[0]: 'segmentations' is not a list"),
    ("wrong mask size", lambda g: g["annotations"][1]["segmentations"].__setitem__(
        0, mask_utils.encode(np.zeros((H + 1, W), bool))), "annotations[1], frame 0: mask size (7, 8)"),
    ("unreadable mask", lambda g: g["annotations"][1]["segmentations"].__setitem__(0, "garbage"),
     "annotations[1], frame 0: unreadable mask"),
    ("unknown video_id", lambda g: g["annotations"][0].update(video_id=99), "annotations[0]: unknown video_id 99"),
    ("unknown category_id", lambda g: g["annotations"][1].update(category_id=2),
     "annotations[1]: unknown category_id 2"),
    ("video_id null", lambda g: g["annotations"][0].update(video_id=None),
     "annotations[0]: 'video_id' is None, not a number"),
    ("duplicate video id", lambda g: g["videos"][1].update(id=1), "video id 1 is listed twice"),
]


@pytest.mark.parametrize(("case", "edit", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_each_mistake_is_one_line_naming_file_and_item(tmp_path, case, edit, message):
    path = _write(tmp_path, _edit(edit))
    with pytest.raises(UserError) as err:
        load_dataset(path)
    text = str(err.value)
    assert message in text, text
    assert text.startswith(f"{path}: ") and "\n" not in text and "fix:" in text


def test_not_json_missing_file_folder_and_wrong_top_level(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        (bad, "not valid JSON"),
        (tmp_path / "absent.json", "file not found"),
        (tmp_path, "is a folder"),
        (_write(tmp_path, [1, 2], "list.json"), "top level is not an object"),
    ]
    latin = tmp_path / "latin.json"
    latin.write_bytes(b"\xff\xfe\x00garbage")
    cases.append((latin, "not valid JSON"))
    for path, message in cases:
        with pytest.raises(UserError, match=message) as err:
            load_dataset(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_result_file_mistakes(tmp_path):
    ds = load_dataset(_write(tmp_path, _gt()))
    good = {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [None, None]}
    cases = [
        ({"a": 1}, "results must be a JSON list"),
        ([{**good, "video_id": 7}], "result [0]: unknown video_id 7"),
        ([good, {**good, "category_id": 3}], "result [1]: unknown category_id 3"),
        ([{k: v for k, v in good.items() if k != "score"}], "result [0] has no 'score' key"),
        ([{**good, "score": "high"}], "result [0]: 'score' is 'high', not a number"),
        ([{**good, "segmentations": [None]}], "result [0]: 1 segmentations but video 1 has 2 frames"),
    ]
    for i, (obj, message) in enumerate(cases):
        path = _write(tmp_path, obj, f"res{i}.json")
        with pytest.raises(UserError) as err:
            load_results(path, ds)
        assert message in str(err.value) and "\n" not in str(err.value)
    # unknown categories are allowed when asked (class-agnostic scoring)
    path = _write(tmp_path, [{**good, "category_id": 3}], "agnostic.json")
    assert load_results(path, ds, check_categories=False)[0].category_id == 3
    # a results list wrapped like a ground-truth file is accepted
    path = _write(tmp_path, {"annotations": [good]}, "wrapped.json")
    assert len(load_results(path, ds)) == 1
