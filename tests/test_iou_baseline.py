"""The IoU-linking baseline tracker on constructed masks."""

from __future__ import annotations

import numpy as np
import pytest

from uvis.data import masks as mask_utils
from uvis.data.masks import iou as mask_iou
from uvis.data.ytvis import Category, Dataset, Track, Video, load_results, save_results
from uvis.evaluation import evaluate
from uvis.pseudo.format import FrameInstance, PseudoLabels
from uvis.track.iou_baseline import IoULinkConfig, instances_from_tracks, link_by_iou, link_video

H, W = 24, 40


def box(x: int, y: int, w: int = 8, h: int = 8) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(y, 0) : y + h, max(x, 0) : x + w] = True
    return m


def inst(mask: np.ndarray, t: int, score: float = 0.9, category: int | None = None, video: int = 1) -> FrameInstance:
    return FrameInstance(video_id=video, frame_index=t, segmentation=mask_utils.encode(mask), score=score,
                         category_id=category)


def decoded(track: Track) -> list[np.ndarray | None]:
    return [None if s is None else mask_utils.decode(s) for s in track.segmentations]


def test_two_objects_swapping_sides_stay_separate():
    """A goes left->right along the top, B right->left along the bottom, 2 px per frame; listing order flips."""
    n = 13
    a = [box(2 + 2 * t, 2) for t in range(n)]
    b = [box(30 - 2 * t, 12) for t in range(n)]
    frames = [[inst(a[t], t), inst(b[t], t)] if t % 2 else [inst(b[t], t), inst(a[t], t)] for t in range(n)]
    tracks = link_video(frames, 1)
    assert len(tracks) == 2
    by_start_x = {int(np.nonzero(decoded(tr)[0])[1].min()): tr for tr in tracks}
    ta, tb = by_start_x[2], by_start_x[30]
    assert all(np.array_equal(m, a[t]) for t, m in enumerate(decoded(ta)))
    assert all(np.array_equal(m, b[t]) for t, m in enumerate(decoded(tb)))
    # they did swap sides
    assert np.nonzero(a[-1])[1].min() > np.nonzero(b[-1])[1].min()


def test_object_appearing_later_gets_a_new_track():
    frames = [[inst(box(2 + t, 2), t)] + ([inst(box(25, 12), t)] if t >= 3 else []) for t in range(6)]
    tracks = link_video(frames, 1)
    assert len(tracks) == 2
    first, late = tracks  # sorted by start frame
    assert all(s is not None for s in first.segmentations)
    assert late.segmentations[:3] == [None, None, None] and all(s is not None for s in late.segmentations[3:])


def test_disappearing_ends_the_track_and_a_return_is_a_new_track():
    frames = [[inst(box(5, 5), t)] if t != 2 else [] for t in range(5)]
    frames[4].append(inst(box(28, 14), 4))  # another object, only in the last frame
    tracks = link_video(frames, 1)
    presence = [[s is not None for s in tr.segmentations] for tr in tracks]
    assert presence == [
        [True, True, False, False, False],
        [False, False, False, True, True],
        [False, False, False, False, True],
    ]


def test_iou_threshold_decides_links():
    # 8x8 boxes shifted by 4 px: IoU = 32 / 96 = 1/3; by 5 px: 24 / 104 < 0.3
    assert mask_iou([mask_utils.encode(box(0, 0))], [mask_utils.encode(box(4, 0))])[0, 0] == pytest.approx(1 / 3)
    near = [[inst(box(0, 0), 0)], [inst(box(4, 0), 1)]]
    far = [[inst(box(0, 0), 0)], [inst(box(5, 0), 1)]]
    assert len(link_video(near, 1)) == 1 and len(link_video(far, 1)) == 2
    assert len(link_video(near, 1, IoULinkConfig(iou_threshold=0.5))) == 2


def test_hungarian_maximises_total_iou():
    """Strips of full height: greedy would link P0->C0 (IoU 1/2) and leave P1 unlinked (IoU(P1, C1) = 0);
    the assignment on 1 - IoU links P0->C1 and P1->C0 (1/3 each), so both tracks continue."""
    p0, p1 = box(0, 0, 6, H), box(6, 0, 2, H)
    c0, c1 = box(2, 0, 6, H), box(0, 0, 2, H)
    iou = mask_iou([mask_utils.encode(p0), mask_utils.encode(p1)], [mask_utils.encode(c0), mask_utils.encode(c1)])
    assert iou == pytest.approx(np.array([[1 / 2, 1 / 3], [1 / 3, 0.0]]))
    tracks = link_video([[inst(p0, 0), inst(p1, 0)], [inst(c0, 1), inst(c1, 1)]], 1)
    assert len(tracks) == 2
    assert [np.array_equal(m, want) for m, want in zip(decoded(tracks[0]), [p0, c1], strict=True)] == [True, True]
    assert [np.array_equal(m, want) for m, want in zip(decoded(tracks[1]), [p1, c0], strict=True)] == [True, True]


def test_category_vote_score_mean_and_low_scores_dropped():
    frames = [
        [inst(box(2, 2), 0, score=0.2, category=3), inst(box(25, 12), 0, score=0.01)],
        [inst(box(3, 2), 1, score=0.4, category=5)],
        [inst(box(4, 2), 2, score=0.6, category=5)],
        [inst(box(5, 2), 3, score=0.8, category=None)],
    ]
    tracks = link_video(frames, 7, IoULinkConfig(min_score=0.05))
    assert len(tracks) == 1
    tr = tracks[0]
    assert tr.video_id == 7 and tr.category_id == 5 and tr.score == pytest.approx(0.5)
    # no category anywhere: default; a tie: the smaller id
    assert link_video([[inst(box(2, 2), 0)]], 1)[0].category_id == 1
    tie = [[inst(box(2, 2), 0, category=4)], [inst(box(2, 2), 1, category=2)]]
    assert link_video(tie, 1)[0].category_id == 2


def test_link_by_iou_gives_valid_results_and_recovers_ground_truth(tmp_path):
    videos = [Video(id=1, width=W, height=H, file_names=[f"a/{t}.jpg" for t in range(5)]),
              Video(id=2, width=W, height=H, file_names=[f"b/{t}.jpg" for t in range(3)])]
    gt_tracks = [
        Track(1, 1, [mask_utils.encode(box(2 + 2 * t, 2)) for t in range(5)], id=1),
        Track(1, 2, [None, None] + [mask_utils.encode(box(28 - t, 14)) for t in range(2, 5)], id=2),
        Track(2, 1, [mask_utils.encode(box(10, 10, 6, 6))] * 3, id=3),
    ]
    gt = Dataset(videos=videos, tracks=gt_tracks, categories=[Category(1, "a"), Category(2, "b")])
    labels = instances_from_tracks(gt)
    assert len(labels.instances) == 5 + 3 + 3
    tracks = link_by_iou(labels)
    assert [t.id for t in tracks] == [1, 2, 3]
    assert [(t.video_id, t.category_id) for t in tracks] == [(1, 1), (1, 2), (2, 1)]
    assert [t.segmentations for t in tracks] == [t.segmentations for t in gt_tracks]
    save_results(tmp_path / "res.json", tracks)
    back = load_results(tmp_path / "res.json", gt)
    assert evaluate(gt, back).stats["AP"] == pytest.approx(1.0)


def test_empty_inputs():
    assert link_video([[], [], []], 1) == []
    assert link_by_iou(PseudoLabels(videos=[], instances=[])) == []
