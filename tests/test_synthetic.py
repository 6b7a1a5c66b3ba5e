"""Synthetic videos: determinism, exact masks, occlusion, enter/leave, dataset round trip."""

from __future__ import annotations

import time

import numpy as np
import pytest

from uvis.data import masks as mask_utils
from uvis.data.synthetic import (
    CLASS_PALETTES,
    SYNTHETIC_CLASSES,
    make_dataset,
    render_video,
    write_video_file,
)
from uvis.data.video import open_video
from uvis.data.ytvis import load_dataset


def test_same_seed_same_video_and_different_seed_differs():
    a, b, c = render_video(seed=7), render_video(seed=7), render_video(seed=8)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert a.category_ids == b.category_ids and a.depth == b.depth
    assert not np.array_equal(a.frames, c.frames)


def test_shapes_and_types():
    v = render_video(num_frames=5, height=40, width=50, num_objects=4, seed=1)
    assert v.frames.shape == (5, 40, 50, 3) and v.frames.dtype == np.uint8
    assert v.masks.shape == (4, 5, 40, 50) and v.masks.dtype == bool
    assert len(v.category_ids) == 4
    assert all(1 <= c <= len(SYNTHETIC_CLASSES) for c in v.category_ids)
    assert len(SYNTHETIC_CLASSES) >= 4 and len(set(SYNTHETIC_CLASSES)) == len(SYNTHETIC_CLASSES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_match_rendered_pixels(seed):
    v = render_video(seed=seed)
    # visible masks are disjoint
    assert (v.masks.sum(axis=0) <= 1).all()
    covered = v.masks.any(axis=0)
    bg = v.frames[~covered]
    assert (bg[:, 0] == bg[:, 1]).all() and (bg[:, 1] == bg[:, 2]).all(), "background must be grey"
    for n, cid in enumerate(v.category_ids):
        pix = v.frames[v.masks[n]]
        assert len(pix) > 0
        palette = np.array(CLASS_PALETTES[SYNTHETIC_CLASSES[cid - 1]])
        match = (pix[:, None, :] == palette[None]).all(axis=2)
        assert match.any(axis=1).all(), f"object {n} has pixels outside its class palette"
        if len(pix) >= 40:
            assert match.any(axis=0).all(), f"object {n}: both texture colours appear"


def test_palettes_distinct_and_not_grey():
    colours = [c for pal in CLASS_PALETTES.values() for c in pal]
    assert len(set(colours)) == len(colours)
    assert all(not (r == g == b) for r, g, b in colours)
    assert set(CLASS_PALETTES) == set(SYNTHETIC_CLASSES)


def test_occlusion_happens_by_default():
    for seed in range(5):
        v = render_video(seed=seed)
        hidden = v.amodal_masks & ~v.masks
        assert hidden.any(), f"seed {seed}: no object is ever occluded"
        # the occluded pixels belong to an object drawn in front
        n, t, y, x = map(int, np.argwhere(hidden)[0])
        front = [m for m in range(v.num_objects) if v.masks[m, t, y, x]]
        assert len(front) == 1 and v.depth[front[0]] > v.depth[n]


def test_visible_masks_are_amodal_minus_front_objects():
    v = render_video(seed=0, occlusion=False, enter_leave=False)
    for n in range(v.num_objects):
        front = np.zeros_like(v.masks[n])
        for m in range(v.num_objects):
            if v.depth[m] > v.depth[n]:
                front |= v.amodal_masks[m]
        assert np.array_equal(v.masks[n], v.amodal_masks[n] & ~front)


def test_enter_leave_gives_empty_frames():
    for seed in range(5):
        v = render_video(seed=seed)
        areas = v.masks.sum(axis=(2, 3))  # [N, T]
        assert (areas[0, 0] == 0) and (v.amodal_masks[0, 0].sum() == 0), "object 0 enters from outside"
        assert v.amodal_masks[1, -1].sum() == 0, "object 1 has left by the last frame"
        assert (areas > 0).any(axis=1).all(), "every object is visible somewhere"
    still = render_video(seed=0, enter_leave=False, occlusion=False, num_frames=4)
    assert (still.amodal_masks.sum(axis=(2, 3)) > 0).all()


def test_make_dataset_round_trip(tmp_path):
    ds = make_dataset(tmp_path, num_videos=2, num_frames=4, height=32, width=48, num_objects=3, seed=3)
    assert ds.frame_root == tmp_path / "JPEGImages"
    assert [c.name for c in ds.categories] == SYNTHETIC_CLASSES
    loaded = load_dataset(tmp_path / "annotations.json", frame_root=ds.frame_root)
    assert [v.name for v in loaded.videos] == ["synth_0000", "synth_0001"]
    assert len(loaded.tracks) == len(ds.tracks) >= 4
    for video in loaded.videos:
        paths = loaded.frame_paths(video)
        assert all(p.exists() and p.suffix == ".png" for p in paths)
        frames = open_video(paths[0].parent).read_all()
        assert frames.shape == (4, 32, 48, 3)
        for track in loaded.tracks_of(video.id):
            palette = np.array(CLASS_PALETTES[SYNTHETIC_CLASSES[track.category_id - 1]])
            for t, seg in enumerate(track.segmentations):
                if seg is None:
                    continue
                m = mask_utils.decode(seg)
                pix = frames[t][m]
                assert (pix[:, None, :] == palette[None]).all(axis=2).any(axis=1).all()
    assert any(s is None for t in loaded.tracks for s in t.segmentations)
    # deterministic: a second write gives the same annotations
    again = make_dataset(tmp_path / "again", num_videos=2, num_frames=4, height=32, width=48, num_objects=3, seed=3)
    assert [t.segmentations for t in again.tracks] == [t.segmentations for t in ds.tracks]


def test_make_dataset_jpeg(tmp_path):
    ds = make_dataset(tmp_path, num_videos=1, num_frames=2, image_format="jpg")
    assert ds.videos[0].file_names[0].endswith(".jpg")
    assert (ds.frame_root / ds.videos[0].file_names[0]).exists()


def test_write_video_file(tmp_path):
    sv = write_video_file(tmp_path / "s.mp4", num_frames=6, seed=2, fps=12)
    video = open_video(tmp_path / "s.mp4")
    assert len(video) == 6 and video.size == (64, 96)
    frames = video.read_all()
    assert frames.shape == sv.frames.shape
    err = np.abs(frames.astype(int) - sv.frames.astype(int)).mean()
    assert err < 20


def test_speed_sanity():
    start = time.perf_counter()
    for s in range(10):
        render_video(num_frames=8, seed=s)
    elapsed = time.perf_counter() - start
    print(f"render_video 8x64x96x3: {elapsed / 10 * 1000:.1f} ms per video")
