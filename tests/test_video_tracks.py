from __future__ import annotations

import numpy as np
import pytest
import torch

from uvis.data import masks as mask_utils
from uvis.predict.types import FrameDetections
from uvis.track.tracker import FrameTracks
from uvis.track.video_tracks import VideoTrackAccumulator, tracks_by_query_index

VOCAB = [(1, "dog"), (2, "cat"), (5, "skateboard")]


def dets(masks, probs, scores):
    n = len(scores)
    return FrameDetections(torch.zeros(n, 4), torch.tensor(probs, dtype=torch.float32),
                           torch.tensor(scores, dtype=torch.float32), torch.tensor(np.array(masks)))


def tracked(indices, ids):
    return FrameTracks(np.array(indices, np.int64), np.array(ids, np.int64))


def box(y, x, h=8, w=12):
    m = np.zeros((16, 24), bool)
    m[y:y + 4, x:x + 4] = True
    return m


def test_accumulates_masks_class_and_score():
    acc = VideoTrackAccumulator(VOCAB)
    # frame 0: track 7 (dog-ish) and an untracked detection; frame 1: nothing; frame 2: track 7 (cat-ish) + track 9
    acc.add(dets([box(0, 0), box(8, 8)], [[0.7, 0.2, 0.1], [0, 0, 1]], [0.8, 0.2]), tracked([0], [7]))
    acc.add(dets(np.zeros((0, 16, 24), bool), np.zeros((0, 3)), []), tracked([], []))
    acc.add(dets([box(8, 20), box(2, 2)], [[0, 0.1, 0.9], [0.5, 0.4, 0.1]], [0.9, 0.6]), tracked([1, 0], [7, 9]))
    out = acc.finish(top_k=None)
    assert acc.num_frames == 3
    by_id = {t.track_id: t for t in out}
    t7 = by_id[7]
    # mean probs of track 7: frames 0 and 2 -> [(0.7+0.5)/2, (0.2+0.4)/2, (0.1+0.1)/2] = [0.6, 0.3, 0.1]
    assert t7.class_name == "dog" and t7.category_id == 1
    assert t7.score == pytest.approx(0.6 * (0.8 + 0.6) / 2)
    assert t7.segmentations[1] is None and t7.num_frames_seen == 2
    assert np.array_equal(mask_utils.decode(t7.segmentations[0]), box(0, 0))
    assert np.array_equal(mask_utils.decode(t7.segmentations[2]), box(2, 2))
    t9 = by_id[9]
    assert t9.category_id == 5 and t9.score == pytest.approx(0.9 * 0.9)
    assert t9.segmentations[:2] == [None, None]
    assert [t.track_id for t in out] == [9, 7]  # ranked by score
    assert [t.track_id for t in acc.finish(top_k=1)] == [9]
    ytvis_track = t9.to_ytvis(video_id=4)
    assert ytvis_track.video_id == 4 and ytvis_track.category_id == 5 and len(ytvis_track.segmentations) == 3


def test_vocabulary_size_must_match():
    acc = VideoTrackAccumulator(VOCAB)
    with pytest.raises(ValueError):
        acc.add(dets([box(0, 0)], [[0.5, 0.5]], [0.9]), tracked([0], [1]))


def test_tracks_by_query_index_links_slots_and_drops_empty_queries():
    masks = torch.zeros(2, 3, 4, 5, dtype=torch.bool)  # 2 frames, 3 queries
    masks[0, 0, :2] = True
    masks[1, 0, 2:] = True  # query 0: seen in both frames
    masks[1, 1, 0, 0] = True  # query 1: only in frame 1; query 2 never
    dets = [FrameDetections(torch.zeros(3, 2), torch.ones(3, 1), torch.tensor(s), masks[f])
            for f, s in enumerate([[0.8, 0.1, 0.5], [0.6, 0.3, 0.5]])]
    tracks = tracks_by_query_index(dets, video_id=7)
    assert len(tracks) == 2 and all(t.video_id == 7 for t in tracks)
    assert tracks[0].score == pytest.approx(0.7) and tracks[1].score == pytest.approx(0.2)
    assert (mask_utils.decode(tracks[0].segmentations[1]) == masks[1, 0].numpy()).all()
    assert tracks[1].segmentations[0] is None
    assert tracks_by_query_index([], video_id=1) == []
