"""Overlays, id maps, id PNGs and contact sheets, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uvis.data import masks as mask_utils
from uvis.data.davis import load_davis
from uvis.data.overlay import colour_for, contact_sheet, draw_overlay, instance_id_map, save_id_png


def test_colour_for_is_stable_and_distinct():
    assert colour_for(5) == colour_for(5)
    colours = [colour_for(i) for i in range(1, 33)]
    assert len(set(colours)) == 32
    assert all(all(0 <= c <= 255 for c in col) for col in colours)
    # consecutive ids are clearly different
    for a, b in zip(colours, colours[1:], strict=False):
        assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 60


def _square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_draw_overlay_blends_outlines_and_leaves_background():
    frame = np.full((40, 60, 3), 100, np.uint8)
    m = _square(40, 60, 10, 30, 20, 40)
    out = draw_overlay(frame, m[None], [7], None, alpha=0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(frame, np.full((40, 60, 3), 100, np.uint8)), "input untouched"
    c = np.array(colour_for(7))
    assert np.array_equal(out[20, 30], np.rint(0.5 * 100 + 0.5 * c).astype(np.uint8))  # interior: blended
    assert np.array_equal(out[10, 30], c) and np.array_equal(out[29, 20], c)  # boundary: full colour
    assert (out[~m] == 100).all()  # outside: unchanged


def test_draw_overlay_label_is_drawn_near_mask():
    frame = np.zeros((60, 80, 3), np.uint8)
    m = _square(60, 80, 30, 50, 10, 40)
    plain = draw_overlay(frame, m[None], [3], None)
    labelled = draw_overlay(frame, m[None], [3], ["3 dog 0.91"])
    diff = (plain != labelled).any(axis=2)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 20
    # the label is wider than the mask: it sits just above it, centred on it
    assert ys.max() < 30 and xs.min() <= 25 <= xs.max()
    # the label box has the track colour and some text ink
    box = labelled[diff]
    assert (box == np.array(colour_for(3))).all(axis=1).sum() > 10
    assert (box != np.array(colour_for(3))).any(axis=1).sum() > 5


def _label_boxes(masks, texts, h, w):
    from uvis.data.overlay import label_sizes, place_labels

    sizes = label_sizes(texts, h)
    return place_labels(masks, sizes, h, w), sizes


def _crowded(h, w, n, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    masks = []
    for _ in range(n):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(6, max(8, h // 6))
        masks.append((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2)
    return masks


@pytest.mark.parametrize("seed", range(5))
def test_no_two_labels_overlap_on_a_crowded_frame(seed):
    """The placement rule: 20 objects on a 240x320 frame, many overlapping; every label is drawn, inside the
    frame, and no two label boxes overlap."""
    h, w = 240, 320
    masks = _crowded(h, w, 20, seed)
    texts = [f"{k + 1} skateboard 0.{k:02d}" for k in range(20)]
    boxes, sizes = _label_boxes(masks, texts, h, w)
    assert all(b is not None for b in boxes)
    for (x0, y0, x1, y1), (tw, th) in zip(boxes, sizes, strict=True):
        assert x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and (x1 - x0, y1 - y0) == (tw, th)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_labels_of_masks_at_the_same_corner_do_not_collide_and_sit_at_their_masks():
    """The two cases seen on real output: two masks touching the image corner (labels both at (0, 0)) and a large
    mask whose label was pinned to the corner."""
    h, w = 480, 854
    big = _square(h, w, 0, 400, 0, 700)
    small = _square(h, w, 0, 60, 0, 90)
    boxes, _ = _label_boxes([small, big], ["2 object 0.91", "1 object 0.73"], h, w)
    a, b = boxes
    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    assert small[a[1]:a[3], a[0]:a[2]].any() or a[1] <= 62  # on or just below the small mask
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    assert abs(cx - 350) < 60 and abs(cy - 200) < 60  # the large mask's label is at its middle, not at (0, 0)


def test_an_uncrowded_label_touches_its_mask():
    h, w = 240, 320
    for seed in range(5):
        (mask,) = _crowded(h, w, 1, seed)
        (box,), _ = _label_boxes([mask], ["7 dog 0.50"], h, w)
        x0, y0, x1, y1 = box
        near = mask[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2]
        assert near.any(), (seed, box)


def test_draw_overlay_label_at_top_edge_and_resized_masks():
    frame = np.zeros((30, 40, 3), np.uint8)
    small = np.zeros((15, 20), bool)
    small[0:5, 0:10] = True  # maps to rows 0..9, cols 0..19 at full size
    out = draw_overlay(frame, small[None], [1], ["1 a"])
    assert out.shape == (30, 40, 3)
    assert (out[20:, 25:] == 0).all()
    assert (out[:10, :20] != 0).any()
    with pytest.raises(ValueError):
        draw_overlay(frame, small[None], [1, 2], None)


def test_instance_id_map_first_wins_and_dtype():
    a = _square(10, 10, 0, 6, 0, 6)
    b = _square(10, 10, 3, 9, 3, 9)
    ids = instance_id_map(np.stack([a, b]), [4, 9], 10, 10)
    assert ids.dtype == np.uint8
    assert ids[0, 0] == 4 and ids[4, 4] == 4 and ids[8, 8] == 9 and ids[0, 9] == 0
    big = instance_id_map(np.stack([a, b]), [4, 300], 10, 10)
    assert big.dtype == np.uint16 and big[8, 8] == 300
    empty = instance_id_map(np.zeros((0, 10, 10), bool), [], 10, 10)
    assert empty.shape == (10, 10) and not empty.any()
    with pytest.raises(ValueError):
        instance_id_map(a[None], [0], 10, 10)


def test_save_id_png_palette_round_trip_via_davis_reader(tmp_path):
    a = _square(12, 16, 0, 4, 0, 4)
    b = _square(12, 16, 6, 12, 8, 16)
    ids = instance_id_map(np.stack([a, b]), [1, 2], 12, 16)
    path = save_id_png(tmp_path / "Annotations" / "480p" / "s" / "00000.png", ids)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert np.array_equal(np.asarray(im), ids)
        assert tuple(im.getpalette()[3:6]) == colour_for(1)
    assert not list(path.parent.glob(".*.tmp"))
    frames = tmp_path / "JPEGImages" / "480p" / "s"
    frames.mkdir(parents=True)
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(frames / "00000.jpg")
    ds = load_davis(tmp_path)
    assert len(ds.tracks) == 2
    assert np.array_equal(mask_utils.decode(ds.tracks[1].segmentations[0]), b)


def test_save_id_png_16bit(tmp_path):
    ids = np.zeros((5, 7), np.uint16)
    ids[1:3, 2:5] = 1000
    ids[4, 6] = 65535
    path = save_id_png(tmp_path / "big.png", ids)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
        assert np.array_equal(np.asarray(im).astype(np.int64), ids.astype(np.int64))


def test_contact_sheet_layout():
    red = np.zeros((20, 40, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[..., 2] = 255
    grey = np.full((8, 8), 77, np.uint8)  # greyscale input comes out RGB
    sheet = contact_sheet([red, blue, grey], cols=2, thumb_width=20, gap=2, background=255)
    # cells: 20 wide; cell height = max(10, 20, 20) = 20; 2 rows
    assert sheet.shape == (20 + 2 + 20, 20 + 2 + 20, 3)
    assert np.array_equal(sheet[0, 0], [255, 0, 0]) and np.array_equal(sheet[9, 19], [255, 0, 0])
    assert np.array_equal(sheet[12, 5], [255, 255, 255])  # below the 10-px-high red thumbnail
    assert np.array_equal(sheet[19, 22], [0, 0, 255])  # blue is 20x20
    assert (sheet[:, 20:22] == 255).all()  # the gap
    assert np.array_equal(sheet[30, 10], [77, 77, 77])
    assert (sheet[22:, 22:] == 255).all()  # empty last cell
    with pytest.raises(ValueError):
        contact_sheet([], cols=2, thumb_width=10)


def _davis_round_trip(root, masks, track_ids):
    """Write one frame's id PNG (and a frame) in the DAVIS layout under ``root`` and read it with load_davis."""
    h, w = masks[0].shape
    save_id_png(root / "Annotations" / "480p" / "s" / "00000.png", instance_id_map(np.stack(masks), track_ids, h, w))
    frames = root / "JPEGImages" / "480p" / "s"
    frames.mkdir(parents=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(frames / "00000.jpg")
    return load_davis(root)


def test_save_id_png_16bit_round_trip_via_davis_reader(tmp_path):
    """More than 255 ids are written as a 16-bit PNG; reading it back keeps every id an object (the 0/255
    'DAVIS-2016 binary' rule is for 8-bit greyscale masks only)."""
    a = _square(12, 16, 0, 4, 0, 4)
    b = _square(12, 16, 6, 12, 8, 16)
    ds = _davis_round_trip(tmp_path, [a, b], [7, 300])
    assert len(ds.tracks) == 2
    assert np.array_equal(mask_utils.decode(ds.tracks[0].segmentations[0]), a)
    assert np.array_equal(mask_utils.decode(ds.tracks[1].segmentations[0]), b)


def test_save_id_png_track_255_survives_the_davis_void_rule(tmp_path):
    """Palette index 255 is void in DAVIS-style masks, so a track with id 255 must be written so it reads back."""
    a = _square(12, 16, 0, 4, 0, 4)
    b = _square(12, 16, 6, 12, 8, 16)
    ds = _davis_round_trip(tmp_path, [a, b], [3, 255])
    assert len(ds.tracks) == 2
    assert np.array_equal(mask_utils.decode(ds.tracks[1].segmentations[0]), b)


def test_labels_scale_with_the_frame():
    """A label on a 720p frame is drawn taller than on a 180p one (a fixed 8 px font is unreadable on HD video)."""
    from uvis.data.overlay import draw_overlay

    def label_height(h: int, w: int) -> int:
        mask = np.zeros((h, w), bool)
        mask[h // 2 :, w // 4 : w // 2] = True
        plain = draw_overlay(np.zeros((h, w, 3), np.uint8), mask[None], [1])
        labelled = draw_overlay(np.zeros((h, w, 3), np.uint8), mask[None], [1], labels=["dog 1"])
        rows = np.nonzero((plain != labelled).any(axis=(1, 2)))[0]
        return int(rows.max() - rows.min() + 1)

    small, large = label_height(180, 320), label_height(720, 1280)
    assert large >= 1.5 * small and large >= 16, (small, large)
