"""The weights-free stage 1: residual motion (camera cancelled) and MotionCut, through every command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from motion_scenes import camera_scene, static_scene
from uvis.data.masks import decode
from uvis.data.video import with_next_frame, write_video
from uvis.errors import UserError
from uvis.features.motion import MotionConfig, MotionStream, camera_residual
from uvis.pseudo.motioncut import MotionCut, MotionCutConfig


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _union(masks: list[tuple[np.ndarray, float]], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m, _ in masks:
        out |= m
    return out


def test_with_next_frame_pairs_each_batch_with_the_following_frame():
    frames = np.arange(7)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8)
    batches = iter([frames[:3], frames[3:6], frames[6:]])
    got = [(b[:, 0, 0, 0].tolist(), None if n is None else int(n[0, 0, 0])) for b, n in with_next_frame(batches)]
    assert got == [([0, 1, 2], 3), ([3, 4, 5], 6), ([6], None)]
    assert list(with_next_frame(iter([]))) == []


def test_camera_residual_cancels_a_pure_camera_motion():
    h, w = 60, 80
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # a zoom about the centre plus a pan: a homography the camera model must absorb exactly
    flow = np.stack([0.05 * (xx - w / 2) + 2.0, 0.05 * (yy - h / 2) - 1.0], -1).astype(np.float32)
    flow[20:30, 30:40] += np.array([4.0, 0.0], np.float32)  # one independently moving patch
    residual, inliers = camera_residual(flow, 4, 0.5)
    mag = np.linalg.norm(residual, axis=-1)
    assert mag[20:30, 30:40].mean() == pytest.approx(4.0, abs=0.1)
    outside = np.ones((h, w), bool)
    outside[18:32, 28:42] = False
    assert mag[outside].max() < 0.05
    assert 0.9 < inliers < 1.0


def test_motion_cut_finds_the_moving_object_under_pan_and_zoom():
    frames, truth = camera_scene(10, pan=2.0, zoom=0.01)
    labeller = MotionCut()
    labeller.start_video()
    per_frame = labeller.masks(frames, None)
    ious = [_iou(_union(masks, truth.shape[1:]), t) for masks, t in zip(per_frame, truth, strict=True)]
    assert min(ious) > 0.7, ious
    assert np.mean(ious) > 0.8, ious
    for masks in per_frame:
        assert len(masks) == 1
        assert 0.5 < masks[0][1] <= 1.0  # a well-separated, clearly moving region scores high
    assert labeller.frames_without_motion == 0


@pytest.mark.parametrize("scene", ["static", "camera-only"])
def test_no_moving_object_gives_no_mask(scene):
    frames = static_scene() if scene == "static" else camera_scene(8, with_object=False, pan=3.0, zoom=0.015)[0]
    labeller = MotionCut(MotionCutConfig(num_masks=3))
    labeller.start_video()
    assert all(masks == [] for masks in labeller.masks(frames, None))
    assert labeller.frames_without_motion == len(frames)


def test_one_frame_video_has_no_motion_and_no_mask():
    labeller = MotionCut()
    labeller.start_video()
    assert labeller.masks(static_scene(1), None) == [[]]


def test_results_do_not_depend_on_batching():
    frames, _ = camera_scene(7)
    labeller = MotionCut(MotionCutConfig(num_masks=2))

    def run(size: int) -> list:
        labeller.start_video()
        out = []
        batches = iter([frames[i:i + size] for i in range(0, len(frames), size)])
        for batch, following in with_next_frame(batches):
            out += [[(fm.rle, fm.score) for fm in masks] for masks in labeller(batch, following)]
        return out

    assert run(1) == run(3) == run(7)


def test_several_objects_give_disjoint_masks():
    a, ta = camera_scene(6, pan=0.0, zoom=0.0, seed=1)
    b, tb = camera_scene(6, pan=0.0, zoom=0.0, seed=2)
    frames = np.concatenate([a[:, :, :64], b[:, :, 64:]], 2)  # two moving discs, one per half
    labeller = MotionCut(MotionCutConfig(num_masks=3))
    labeller.start_video()
    for masks in labeller.masks(frames, None):
        stack = np.stack([m for m, _ in masks])
        assert stack.sum(0).max() <= 1


@pytest.mark.parametrize("bad", [{"refine": "crf"}, {"num_masks": 0}, {"sigma": 0.0}, {"sigma": float("nan")}])
def test_bad_motion_cut_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        MotionCutConfig(**bad)


def test_bad_motion_settings_are_user_errors():
    with pytest.raises(UserError):
        MotionConfig(flow_preset="slow")
    with pytest.raises(UserError):
        MotionConfig(work_size=8)


def test_motion_stream_matches_frame_count_and_working_size():
    frames, _ = camera_scene(5, height=120, width=160)
    stream = MotionStream(MotionConfig(work_size=80, patch=4))
    out = stream(frames[:3], frames[3]) + stream(frames[3:], None)
    assert len(out) == 5
    assert out[0].size == (60, 80)
    assert out[0].vectors.shape == (15, 20, 4)


# ---------------------------------------------------------------------------------------------- commands


def _scene_folder(tmp_path, name="clip", **kw):
    frames, truth = camera_scene(8, **kw)
    folder = tmp_path / name
    folder.mkdir()
    from PIL import Image

    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    return folder, truth


def test_pseudo_label_features_motion_needs_no_weights_and_resumes(tmp_path, capsys):
    from uvis.cli.main import main

    folder, truth = _scene_folder(tmp_path)
    out = tmp_path / "pl"
    assert main(["pseudo-label", str(folder), "--features", "motion", "--out", str(out), "--no-progress",
                 "--batch-size", "3"]) == 0
    data = json.loads((out / "pseudo_labels.json").read_text())
    assert data["info"]["config"]["features"] == "motion"
    assert data["categories"] == []
    by_frame = {a["frame_index"]: decode(a["segmentation"]) for a in data["annotations"]}
    assert len(by_frame) == len(truth)
    assert np.mean([_iou(by_frame[t].astype(bool), truth[t]) for t in range(len(truth))]) > 0.75
    assert all(0 < a["score"] <= 1 for a in data["annotations"])
    before = (out / "pseudo_labels.json").read_bytes()
    capsys.readouterr()
    assert main(["pseudo-label", str(folder), "--features", "motion", "--out", str(out), "--no-progress"]) == 0
    assert (out / "pseudo_labels.json").read_bytes() == before
    # other settings in the same folder are refused, as for MaskCut
    assert main(["pseudo-label", str(folder), "--features", "motion", "--num-masks", "2", "--out", str(out),
                 "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_pseudo_label_motion_with_crf_is_a_user_error(tmp_path, capsys):
    from uvis.cli.main import main

    folder, _ = _scene_folder(tmp_path)
    assert main(["pseudo-label", str(folder), "--features", "motion", "--crf", "--out", str(tmp_path / "o")]) == 2
    assert "--crf" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_segment_model_none_falls_back_to_motion_without_weights(tmp_path, capsys):
    from uvis.cli.main import main

    # no weights anywhere and no network (tests/conftest.py)
    frames, truth = camera_scene(8)
    video = tmp_path / "clip.mp4"
    write_video(video, list(frames), fps=10)
    out = tmp_path / "seg"
    assert main(["segment", str(video), "--model", "none", "--out", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "weights-free motion features" in said
    assert "named 'object'" in said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks"] >= 1
    results = json.loads((out / "results.json").read_text())
    best = max(results, key=lambda r: r["score"])
    masks = [decode(s).astype(bool) if s is not None else np.zeros(truth.shape[1:], bool)
             for s in best["segmentations"]]
    # the video codec blurs the texture a little: the track still follows the disc
    assert np.mean([_iou(m, t) for m, t in zip(masks, truth, strict=True)]) > 0.6
    record = json.loads(next((out / "videos").glob("*.json")).read_text())
    assert record["settings"]["stage1"]["features"] == "motion"


def test_segment_motion_with_classes_needs_clip(tmp_path, capsys):
    from uvis.cli.main import main

    folder, _ = _scene_folder(tmp_path)
    code = main(["segment", str(folder), "--model", "none", "--features", "motion", "--classes", "dog",
                 "--out", str(tmp_path / "seg"), "--no-progress"])
    assert code == 2
    assert "CLIP" in capsys.readouterr().err


def test_weights_free_segment_says_no_dino_estimate_and_keeps_one_class(tmp_path, capsys):
    """Motion features run no DINO (no CPU time estimate) and, without CLIP weights, name everything 'object'
    (not the starting vocabulary); off a terminal the progress still comes as log lines."""
    from uvis.cli.main import main

    frames, _ = camera_scene(8)
    video = tmp_path / "clip.mp4"
    write_video(video, list(frames), fps=10)
    out = tmp_path / "seg"
    assert main(["segment", str(video), "--model", "none", "--features", "motion", "--device", "cpu",
                 "--out", str(out), "--no-png"]) == 0
    captured = capsys.readouterr()
    assert "for DINO alone" not in captured.err and "starting vocabulary" not in captured.err
    assert "segment clip: done, 8 frames in" in captured.err  # the per-frame log line
    assert "videos: done, 1 video in" in captured.err
    record = json.loads(next((out / "videos").glob("*.json")).read_text())
    assert record["settings"]["classes"] == ["object"]
    assert {r["track_id"] for r in json.loads((out / "results.json").read_text())} == \
        {t["track_id"] for t in record["tracks"]}


# ---------------------------------------------------------------------------------------------- dino+motion


def _tiny_dino():
    import torch

    from uvis.features import backbones, dino

    torch.manual_seed(0)
    return dino.DinoFeatures("tiny", model=backbones.build_vit(backbones.VITS["tiny"]), device="cpu", amp=False)


def _fused_ious(weight: float, frames: np.ndarray, truth: np.ndarray, batch: int = 4) -> list[float]:
    from uvis.pseudo.maskcut import FusedMaskCut, MaskCutConfig

    labeller = FusedMaskCut(_tiny_dino(), MaskCutConfig(resolution=96, num_masks=1),
                            motion=MotionConfig(patch=8), motion_weight=weight)
    labeller.start_video()
    batches = iter([frames[i:i + batch] for i in range(0, len(frames), batch)])
    ious = []
    for b, following in with_next_frame(batches):
        for masks in labeller(b, following):
            got = np.zeros(truth.shape[1:], bool)
            for m in masks:
                got |= decode(m.rle).astype(bool)
            ious.append(_iou(got, truth[len(ious)]))
    return ious


def test_dino_plus_motion_follows_the_moving_object_where_random_dino_does_not():
    frames, truth = camera_scene(8, pan=2.0, zoom=0.01)
    fused = _fused_ious(0.7, frames, truth)
    alone = _fused_ious(0.0, frames, truth)
    assert np.mean(fused) > 0.6, fused
    assert min(fused) > 0.4, fused
    assert np.mean(alone) < 0.3, alone  # random keys: the cut has nothing to do with the disc


def test_motion_weight_zero_is_plain_maskcut_exactly():
    from uvis.pseudo.maskcut import FusedMaskCut, MaskCut, MaskCutConfig

    frames, _ = camera_scene(6)
    config = MaskCutConfig(resolution=96, num_masks=3)
    plain = MaskCut(_tiny_dino(), config)(frames)
    fused = FusedMaskCut(_tiny_dino(), config, motion_weight=0.0)
    fused.start_video()
    got = fused(frames, None)
    assert [[(m.rle, m.score) for m in f] for f in got] == [[(m.rle, m.score) for m in f] for f in plain]


def test_fused_graph_is_the_weighted_sum_of_both_graphs():
    import torch

    from uvis.pseudo.maskcut import MaskCutConfig, maskcut_patches

    torch.manual_seed(0)
    keys = torch.randn(1, 16, 8)
    motion = torch.rand(1, 16, 16)
    motion = (motion + motion.transpose(1, 2)) / 2
    cfg = MaskCutConfig(num_masks=1)
    only_motion = maskcut_patches(torch.ones(1, 16, 8), (4, 4), cfg, motion=motion, motion_weight=1.0)
    # weight 1: the DINO graph (here a complete graph) no longer counts; the cut is the motion graph's
    from uvis.pseudo.maskcut import orient, second_eigenvector, seed_component

    fg, seed = orient(second_eigenvector(motion), (4, 4))
    assert torch.equal(only_motion.masks.view(1, -1), seed_component(fg, seed, (4, 4)))
    assert torch.equal(maskcut_patches(keys, (4, 4), cfg, motion=motion, motion_weight=0.0).masks,
                       maskcut_patches(keys, (4, 4), cfg).masks)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_motion_weight_is_a_user_error(bad):
    from uvis.pseudo.maskcut import FusedMaskCut

    with pytest.raises(UserError):
        FusedMaskCut(_tiny_dino(), motion_weight=bad)


def test_pseudo_label_dino_plus_motion_records_the_weight_and_follows_the_disc(tmp_path):
    import torch

    from uvis.cli.main import main
    from uvis.features import backbones

    weights = tmp_path / "tiny.pth"
    torch.manual_seed(0)
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), weights)
    folder, truth = _scene_folder(tmp_path)
    common = [str(folder), "--features", "dino+motion", "--dino", "tiny", "--dino-weights", str(weights),
              "--resolution", "96", "--num-masks", "1", "--no-progress", "--device", "cpu"]
    assert main(["pseudo-label", *common, "--motion-weight", "0.8", "--out", str(tmp_path / "pl")]) == 0
    data = json.loads((tmp_path / "pl" / "pseudo_labels.json").read_text())
    assert data["info"]["config"]["features"] == "dino+motion"
    assert data["info"]["config"]["motion_weight"] == 0.8
    got = {a["frame_index"]: decode(a["segmentation"]).astype(bool) for a in data["annotations"]}
    assert np.mean([_iou(got.get(t, np.zeros_like(truth[t])), truth[t]) for t in range(len(truth))]) > 0.5
    assert main(["pseudo-label", *common, "--motion-weight", "2", "--out", str(tmp_path / "bad")]) == 2


def test_patch_and_ransac_threshold_scale_with_small_frames_only():
    config = MotionConfig()
    assert config.scaled(854) == (16, 2.0)  # DAVIS 480p (and anything resized down to 854): unchanged
    assert config.scaled(1280) == (16, 2.0)
    patch, threshold = config.scaled(428)
    assert patch == 8 and threshold == pytest.approx(1.0, abs=0.01)
    assert config.scaled(128)[0] == 8  # never under min_patch
    assert MotionConfig(scale_to_frame=False).scaled(128) == (16, 2.0)
    frames, _ = camera_scene(3)  # 96x128: a 12x16 grid instead of 6x8
    assert MotionStream()(frames, None)[0].vectors.shape[:2] == (12, 16)


def test_previous_mask_is_moved_onto_the_frame_by_the_backward_flow():
    from uvis.features.motion import FrameMotion
    from uvis.pseudo.motioncut import VideoState

    h, w = 32, 48
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -5.0  # every pixel came from 5 px to its left: the scene moved right by 5
    motion = FrameMotion(np.zeros((h, w), np.float32), np.zeros((4, 6, 4), np.float32), np.zeros((4, 6), np.float32),
                         np.zeros((h, w, 3), np.uint8), 1.0, back_flow=back)
    state = VideoState(MotionCutConfig())
    assert state.warped_prev(motion) is None  # nothing seen yet
    state.prev = np.zeros((h, w), bool)
    state.prev[10:20, 10:20] = True
    moved = state.warped_prev(motion) > 0.5
    expected = np.zeros((h, w), bool)
    expected[10:20, 15:25] = True
    assert np.array_equal(moved, expected)


def test_previous_mask_term_keeps_the_object_and_stays_off_a_static_shot():
    frames, truth = camera_scene(10, pan=2.0, zoom=0.01)
    ious = {}
    for t in (0.0, 0.2, 0.6):
        labeller = MotionCut(MotionCutConfig(temporal=t))
        labeller.start_video()
        ious[t] = np.mean([_iou(_union(m, truth.shape[1:]), g) for m, g in zip(labeller.masks(frames, None), truth,
                                                                                   strict=True)])
    # the default weight keeps the disc; a weight above the pixel threshold lets the mask trail the disc
    assert ious[0.2] > 0.8 and ious[0.0] > 0.8, ious
    assert ious[0.6] < ious[0.2], ious
    labeller = MotionCut()
    labeller.start_video()
    assert all(m == [] for m in labeller.masks(static_scene(), None))
