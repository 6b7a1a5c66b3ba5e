"""Sanity check of the IoU baseline and DAVIS J on real data: DAVIS-2016 ground truth, cut into per-frame
instances and re-linked, must come back whole (J = 1) wherever consecutive masks overlap enough to link."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvis.cli.main import main
from uvis.data.masks import iou as mask_iou
from uvis.data.ytvis import load_dataset
from uvis.evaluation import evaluate
from uvis.evaluation.davis_j import davis_j
from uvis.track.iou_baseline import IoULinkConfig, instances_from_tracks, link_by_iou

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_import_davis_then_baseline_on_ground_truth_masks(tmp_path, capsys):
    root = SHARED / "data" / "davis2016"
    if not (root / "JPEGImages" / "480p").is_dir():
        pytest.skip(f"real DAVIS-2016 subset not present at {root}")
    out = tmp_path / "davis2016.json"
    assert main(["import-davis", str(root), "--out", str(out)]) == 0
    assert "10 sequences" in capsys.readouterr().out
    gt = load_dataset(out, frame_root=root / "JPEGImages" / "480p")
    assert len(gt.videos) == 10 and sum(v.length for v in gt.videos) == 578
    labels = instances_from_tracks(gt)
    assert len(labels.instances) == 578  # one foreground mask on every frame

    # Where the object's consecutive masks overlap by less than the link threshold (bmx-trees: the rider
    # behind tree trunks), the baseline must start a new track, and nowhere else.
    config = IoULinkConfig()
    breaks = {}
    for video in gt.videos:
        (track,) = gt.tracks_of(video.id)
        segs = track.segmentations
        breaks[video.id] = sum(mask_iou([segs[t]], [segs[t + 1]])[0, 0] < config.iou_threshold
                               for t in range(len(segs) - 1))
    assert sum(breaks.values()) > 0 and sum(b == 0 for b in breaks.values()) >= 5  # both cases are exercised
    tracks = link_by_iou(labels, config)
    for video in gt.videos:
        assert sum(t.video_id == video.id for t in tracks) == 1 + breaks[video.id], video.name
    result = davis_j(gt, tracks)
    for video in gt.videos:
        assert (result.per_video[video.id] == 1.0) == (breaks[video.id] == 0), video.name

    # With a threshold below every consecutive IoU, each sequence is one track again: J = 1 and AP = 1.
    relinked = link_by_iou(labels, IoULinkConfig(iou_threshold=0.01))
    assert len(relinked) == 10
    result = davis_j(gt, relinked)
    assert result.mean == 1.0 and result.object_mean == 1.0
    assert evaluate(gt, relinked, class_agnostic=True).stats["AP"] == pytest.approx(1.0)
