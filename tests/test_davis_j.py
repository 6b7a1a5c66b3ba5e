"""DAVIS J on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from uvis.data import masks as mask_utils
from uvis.data.ytvis import Category, Dataset, Track, Video
from uvis.errors import UserError
from uvis.evaluation.davis_j import davis_j, frame_j

H, W = 4, 4


def box(y: int, x: int, h: int = 2, w: int = 2):
    m = np.zeros((H, W), bool)
    m[y : y + h, x : x + w] = True
    return mask_utils.encode(m)


EMPTY = mask_utils.encode(np.zeros((H, W), bool))


def _dataset() -> Dataset:
    videos = [Video(id=1, width=W, height=H, file_names=["a/0.jpg", "a/1.jpg", "a/2.jpg"]),
              Video(id=2, width=W, height=H, file_names=["b/0.jpg", "b/1.jpg"]),
              Video(id=3, width=W, height=H, file_names=["c/0.jpg"])]
    tracks = [
        Track(1, 1, [box(0, 0), box(0, 0), None], id=1),  # A
        Track(1, 1, [None, EMPTY, box(2, 2)], id=2),  # B: an empty mask is the same as absent
        Track(2, 1, [box(1, 1), None], id=3),  # C, never predicted
        Track(3, 1, [box(0, 0, 4, 2)], id=4),  # left half
        Track(3, 1, [box(0, 2, 4, 2)], id=5),  # right half
    ]
    return Dataset(videos=videos, tracks=tracks, categories=[Category(1, "object")])


def _preds() -> list[Track]:
    return [
        Track(1, 1, [box(0, 0), box(0, 1), None], score=0.9),  # P1: J = 1, 2/6, 1 -> 7/9 for A
        Track(1, 1, [None, box(0, 0), box(2, 2)], score=0.8),  # P2: 1/3 for A; 1, 0, 1 -> 2/3 for B
        Track(3, 1, [box(0, 0, 4, 4)], score=0.5),  # the whole frame: J 1/2 with each half
    ]


def test_frame_j_both_empty_is_one():
    j = frame_j([[None, EMPTY, box(0, 0)]], [[EMPTY, None, None]], 3)
    assert j.tolist() == [[[1.0, 1.0, 0.0]]]
    j = frame_j([[box(0, 0)], [box(0, 1)]], [[box(0, 0)], [box(2, 2)]], 1)
    assert j[:, :, 0] == pytest.approx(np.array([[1.0, 0.0], [1 / 3, 0.0]]))


def test_best_matching_hand_computed():
    result = davis_j(_dataset(), _preds())
    assert result.per_object[(1, 1)] == pytest.approx(7 / 9)
    assert result.per_object[(1, 2)] == pytest.approx(2 / 3)
    assert result.per_object[(2, 3)] == pytest.approx(1 / 2)  # no prediction: 1 on the frame C is absent
    assert result.per_object[(3, 4)] == pytest.approx(1 / 2) and result.per_object[(3, 5)] == pytest.approx(1 / 2)
    assert result.per_video == pytest.approx({1: 13 / 18, 2: 1 / 2, 3: 1 / 2})
    assert result.mean == pytest.approx((13 / 18 + 1 / 2 + 1 / 2) / 3)
    assert result.object_mean == pytest.approx((7 / 9 + 2 / 3 + 1 / 2 + 1 / 2 + 1 / 2) / 5)


def test_hungarian_matching_is_one_to_one():
    result = davis_j(_dataset(), _preds(), matching="hungarian")
    assert result.per_video[1] == pytest.approx(13 / 18)  # the same pairs as best matching
    # one prediction for two objects: one object gets it, the other an empty track (J 0 on its one frame)
    assert sorted([result.per_object[(3, 4)], result.per_object[(3, 5)]]) == pytest.approx([0.0, 0.5])
    assert result.per_video[3] == pytest.approx(0.25)


def test_perfect_predictions_and_no_predictions():
    gt = _dataset()
    perfect = [Track(t.video_id, 1, list(t.segmentations)) for t in gt.tracks]
    for matching in ("best", "hungarian"):
        result = davis_j(gt, perfect, matching=matching)
        assert result.mean == 1.0 and result.object_mean == 1.0
    nothing = davis_j(gt, [])
    # A: absent in 1 of 3 frames; B: absent in 2 of 3; C: 1 of 2; halves: present in their only frame
    assert nothing.per_object == pytest.approx({(1, 1): 1 / 3, (1, 2): 2 / 3, (2, 3): 1 / 2, (3, 4): 0.0, (3, 5): 0.0})


def test_prediction_errors_are_user_errors():
    gt = _dataset()
    with pytest.raises(UserError, match="unknown video_id 9"):
        davis_j(gt, [Track(9, 1, [None])])
    with pytest.raises(UserError, match="1 segmentations but video 1 has 3 frames"):
        davis_j(gt, [Track(1, 1, [None])])
    with pytest.raises(ValueError):
        davis_j(gt, [], matching="greedy")  # type: ignore[arg-type]
