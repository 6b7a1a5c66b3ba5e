from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oracle_predictor import OraclePredictor
from uvis.data import masks as mask_utils
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset
from uvis.data.video import open_video
from uvis.errors import UserError
from uvis.track.segmenter import Segmenter
from uvis.track.tracker import TrackerConfig


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    dataset = make_dataset(root, num_videos=2, num_frames=10, height=48, width=64, num_objects=3, seed=3)
    return root, dataset


def _video(root, dataset, index=0):
    return discover(root).items[index].open(), dataset.tracks_of(dataset.videos[index].id)


def test_segment_recovers_every_ground_truth_track(synth):
    root, dataset = synth
    oracle = OraclePredictor(dataset)
    video, gt_tracks = _video(root, dataset)
    result = Segmenter(oracle, top_k=10).segment(video, batch_size=4, progress=False)
    assert oracle.calls == 3  # 10 frames streamed in batches of 4, 4, 2
    assert result.num_frames == 10 and len(result.tracks) >= len(gt_tracks)
    names = dict(oracle.vocabulary)
    for gt in gt_tracks:
        # the predicted track whose masks equal this object's, frame by frame
        match = [t for t in result.tracks if all(
            (a is None) == (b is None) and (a is None or np.array_equal(mask_utils.decode(a), mask_utils.decode(b)))
            for a, b in zip(t.segmentations, gt.segmentations, strict=True))]
        assert len(match) == 1, "object split over several tracks or merged with another"
        assert match[0].class_name == names[gt.category_id]
        assert match[0].score == pytest.approx(0.85 * 0.9, abs=1e-4)
    # true objects outrank the confident false positives (their classes are unsure)
    assert all(t.score > 0.7 for t in result.tracks[: len(gt_tracks)])


def test_outputs_json_pngs_overlay(synth, tmp_path):
    root, dataset = synth
    video, gt_tracks = _video(root, dataset, 1)
    result = Segmenter(OraclePredictor(dataset)).segment(video, batch_size=8, progress=False)
    result.save_json(tmp_path / "r.json", video_id=2)
    from uvis.data.ytvis import load_results

    loaded = load_results(tmp_path / "r.json", dataset)
    assert len(loaded) == len(result.tracks) and {t.video_id for t in loaded} == {2}
    folder = result.save_pngs(tmp_path / "png")
    pngs = sorted(folder.glob("*.png"))
    assert [p.stem for p in pngs] == [f"{t:05d}" for t in range(10)]
    best = result.tracks[0]
    for t, p in enumerate(pngs):
        ids = np.asarray(Image.open(p))
        assert ids.shape == (48, 64)
        if best.segmentations[t] is not None:  # the best track wins its own pixels
            assert (ids[mask_utils.decode(best.segmentations[t])] == best.track_id).all()
        assert set(np.unique(ids)) <= {0} | {tr.track_id for tr in result.tracks}
    out = result.save_overlay(tmp_path / "o.mp4")
    back = open_video(out)
    assert back.num_frames == 10 and (back.height, back.width) == (48, 64)


def test_vocabulary_restriction(synth):
    root, dataset = synth
    video, _ = _video(root, dataset)
    seg = Segmenter(OraclePredictor(dataset), classes=["disc", "Square"])
    assert [n for _, n in seg.vocabulary] == ["disc", "square"]
    result = seg.segment(video, progress=False)
    assert {t.class_name for t in result.tracks} <= {"disc", "square"}
    with pytest.raises(UserError, match="not in the model's vocabulary"):
        Segmenter(OraclePredictor(dataset), classes=["zebra"])


def test_no_memory_config_and_bad_batch(synth):
    root, dataset = synth
    video, _ = _video(root, dataset)
    seg = Segmenter(OraclePredictor(dataset), tracker_config=TrackerConfig.minvis_baseline())
    assert seg.segment(video, progress=False).tracks
    with pytest.raises(UserError):
        seg.segment(video, batch_size=0)


def test_overlay_never_overwrites_the_input_video(tmp_path):
    import torch

    from uvis.data.synthetic import write_video_file
    from uvis.data.vocabulary import Vocabulary
    from uvis.predict.base import Predictor
    from uvis.predict.types import FrameDetections

    class Nothing(Predictor):
        vocabulary = Vocabulary.from_names(["object"])

        def predict(self, frames, next_frame=None):
            h, w = frames.shape[1:3]
            return [FrameDetections(torch.zeros(0, 4), torch.zeros(0, 1), torch.zeros(0), torch.zeros(0, h, w, dtype=bool))
                    for _ in frames]

    clip = tmp_path / "clip.mp4"
    write_video_file(clip, num_frames=3, height=32, width=48, num_objects=1, seed=0)
    before = clip.read_bytes()
    result = Segmenter(Nothing()).segment(clip, progress=False)
    with pytest.raises(UserError, match="input video"):
        result.save_overlay(tmp_path / "." / "clip.mp4")
    assert clip.read_bytes() == before
