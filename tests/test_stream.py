"""``Segmenter.track``: one FrameResult per frame from a video file, a frame folder or any iterable of frames,
agreeing with ``segment()``; sources that fail or give nothing are one clear UserError."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from oracle_predictor import OraclePredictor
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset, write_video_file
from uvis.data.video import open_video
from uvis.errors import UserError
from uvis.predict.stage1 import OBJECT, Stage1Config, Stage1Predictor
from uvis.track.segmenter import FrameResult, Segmenter
from uvis.track.tracker import TrackerConfig


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    dataset = make_dataset(root, num_videos=2, num_frames=12, height=48, width=64, num_objects=3, seed=5)
    return root, dataset


def _agrees(frames: list[FrameResult], result) -> None:
    """Every frame's streamed masks are the final tracks' masks; the last frame's standing is the final class."""
    assert [f.index for f in frames] == list(range(result.num_frames))
    final = {t.track_id: t for t in result.tracks}
    for f in frames:
        assert f.masks.dtype == bool and f.masks.shape[1:] == (result.video.height, result.video.width)
        assert len(f.track_ids) == len(f.masks) == len(f.class_names) == len(f.scores) == len(f.category_ids)
        for tid, mask in zip(f.track_ids.tolist(), f.masks, strict=True):
            if tid in final:  # segment() keeps the top_k best tracks; the stream sees them all
                assert np.array_equal(mask_utils.decode(final[tid].segmentations[f.index]), mask)
    for track in result.tracks:  # every final mask was streamed, in its frame
        for t, seg in enumerate(track.segmentations):
            assert (seg is not None) == (track.track_id in frames[t].track_ids.tolist())
    last = {}
    for f in frames:
        last.update({tid: (c, n, s) for tid, c, n, s in
                     zip(f.track_ids.tolist(), f.category_ids, f.class_names, f.scores.tolist(), strict=True)})
    for track in result.tracks:  # a track's standing when last seen is its final class and score
        cid, name, score = last[track.track_id]
        assert (cid, name) == (track.category_id, track.class_name) and score == pytest.approx(track.score)


def test_track_a_frame_folder_and_a_generator_agree_with_segment(synth):
    root, dataset = synth
    folder = dataset.frame_root / dataset.videos[0].name
    def seg() -> Segmenter:  # a fresh oracle each time: its noise comes from a seeded generator
        return Segmenter(OraclePredictor(dataset), top_k=10)

    result = seg().segment(folder, batch_size=5, progress=False)
    streamed = list(seg().track(folder, batch_size=5, progress=False))  # the frame folder
    _agrees(streamed, result)

    def camera():  # any generator of HxWx3 uint8 frames
        yield from open_video(folder)

    from_generator = list(seg().track(camera(), batch_size=4, progress=False))
    assert len(from_generator) == len(streamed)
    for a, b in zip(streamed, from_generator, strict=True):  # the batch size changes nothing
        assert np.array_equal(a.track_ids, b.track_ids) and np.array_equal(a.masks, b.masks)
        assert a.class_names == b.class_names and np.allclose(a.scores, b.scores)
    # a [T, H, W, 3] array is an iterable of frames too
    array = list(seg().track(open_video(folder).read_all(), batch_size=12, progress=False))
    assert [f.track_ids.tolist() for f in array] == [f.track_ids.tolist() for f in streamed]


def test_segment_gives_the_results_it_gave_before_the_stream(synth, tmp_path):
    """results_json byte for byte as the Segmenter wrote it before ``track()`` existed (digest recorded then,
    same synthetic data and oracle); and a temporal predictor (MotionCut, weights-free) through ``track()``."""
    ds = make_dataset(tmp_path / "d", num_videos=2, num_frames=12, height=48, width=64, num_objects=3, seed=5)
    item = discover(tmp_path / "d").items[0]
    result = Segmenter(OraclePredictor(ds), top_k=10).segment(item.open(), batch_size=5, progress=False)
    digest = hashlib.sha256(json.dumps(result.results_json(1)).encode()).hexdigest()
    assert digest == "424ca2053c3ee119629e1f2fd79b2e5898ecc984bec13c8168d3dfbfc88fe80c"

    clip = tmp_path / "m.mp4"
    write_video_file(clip, num_frames=10, height=48, width=64, num_objects=2, seed=2)
    motion = Stage1Predictor.create(OBJECT, Stage1Config(features="motion", clip=None), device="cpu")
    seg = Segmenter(motion, tracker_config=TrackerConfig(score_threshold=0.1))
    result = seg.segment(clip, batch_size=3, progress=False)
    assert result.tracks
    frames = list(seg.track(clip, batch_size=3, progress=False))  # a video file
    _agrees(frames, result)


def test_a_source_failing_midway_is_a_clear_error(synth):
    _, dataset = synth
    frames = open_video(dataset.frame_root / dataset.videos[0].name).read_all()

    def broken_camera():
        yield from frames[:5]
        raise OSError("camera unplugged")

    seg = Segmenter(OraclePredictor(dataset))
    got = []
    with pytest.raises(UserError, match=r"failed after 5 frame\(s\) \(OSError: camera unplugged\)") as info:
        got.extend(seg.track(broken_camera(), batch_size=2, progress=False))
    assert isinstance(info.value.__cause__, OSError)
    assert [f.index for f in got] == [0, 1, 2, 3]  # the frames of the finished batches came out first


def test_empty_or_bad_sources_are_user_errors(synth):
    _, dataset = synth
    seg = Segmenter(OraclePredictor(dataset))
    with pytest.raises(UserError, match="gave no frames"):
        list(seg.track(iter([]), progress=False))
    with pytest.raises(UserError, match=r"frame 1 .* not an HxWx3 uint8"):
        list(seg.track([np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.uint8)], progress=False))
    with pytest.raises(UserError, match="frame 1 .* 32x48, the first 64x48"):
        list(seg.track([np.zeros((48, 64, 3), np.uint8), np.zeros((48, 32, 3), np.uint8)], progress=False))
    with pytest.raises(UserError, match="not a video"):
        list(seg.track(42, progress=False))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="batch size"):
        list(seg.track(iter([]), batch_size=0))


def test_the_stream_leaves_inference_mode_to_the_caller(synth):
    import torch

    _, dataset = synth
    for _ in Segmenter(OraclePredictor(dataset)).track(dataset.frame_root / dataset.videos[0].name, progress=False):
        assert not torch.is_inference_mode_enabled()
