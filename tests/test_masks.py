"""RLE masks: round trips, uncompressed counts, polygons, normalize, area and box, IoU and merge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uvis.data import masks as mask_utils


def _random_mask(rng, h, w, p=0.3):
    return rng.random((h, w)) < p


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (33, 17), (64, 96)])
def test_encode_decode_round_trip(shape):
    rng = np.random.default_rng(shape[0])
    m = _random_mask(rng, *shape)
    rle = mask_utils.encode(m)
    assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
    json.dumps(rle)  # JSON-ready
    back = mask_utils.decode(rle)
    assert back.dtype == bool and np.array_equal(back, m)
    assert mask_utils.area(rle) == int(m.sum())


def test_encode_accepts_non_contiguous_and_uint8():
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:9] = 1
    assert np.array_equal(mask_utils.decode(mask_utils.encode(m)), m.astype(bool))
    view = np.zeros((20, 12), bool)
    view[4:10, 3:9] = True
    assert np.array_equal(mask_utils.decode(mask_utils.encode(view[::2])), view[::2])
    with pytest.raises(ValueError):
        mask_utils.encode(np.zeros((2, 3, 4), bool))


def test_encode_many_matches_encode():
    rng = np.random.default_rng(1)
    stack = np.stack([_random_mask(rng, 9, 13) for _ in range(4)])
    rles = mask_utils.encode_many(stack)
    assert rles == [mask_utils.encode(m) for m in stack]
    assert mask_utils.encode_many(np.zeros((0, 9, 13), bool)) == []
    with pytest.raises(ValueError):
        mask_utils.encode_many(stack[0])


def _uncompressed(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths in column-major order, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def test_uncompressed_counts_decode_and_normalize():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True
    m[0, 0] = True  # starts with a 'one' run: counts begin with 0
    unc = _uncompressed(m)
    assert unc["counts"][0] == 0
    assert np.array_equal(mask_utils.decode(unc), m)
    assert mask_utils.area(unc) == int(m.sum())
    norm = mask_utils.normalize(unc, 4, 5)
    assert isinstance(norm["counts"], str) and norm == mask_utils.encode(m)


def test_bytes_counts_are_accepted():
    m = np.eye(6, dtype=bool)
    rle = mask_utils.encode(m)
    as_bytes = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    assert np.array_equal(mask_utils.decode(as_bytes), m)
    assert mask_utils.normalize(as_bytes, 6, 6) == rle


def test_bbox_is_xywh():
    m = np.zeros((10, 20), bool)
    m[2:6, 5:15] = True
    assert mask_utils.bbox(mask_utils.encode(m)) == [5.0, 2.0, 10.0, 4.0]


def test_polygons_rasterise():
    # a 10x10 axis-aligned square with corners on pixel boundaries
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]
    rle = mask_utils.from_polygons(square, 20, 20)
    m = mask_utils.decode(rle)
    assert rle["size"] == [20, 20]
    assert 90 <= m.sum() <= 121 and m[7, 7] and not m[15, 15] and not m[0, 0]
    # two polygons are merged into one mask
    two = mask_utils.decode(mask_utils.from_polygons(square + [[14, 14, 18, 14, 18, 18, 14, 18]], 20, 20))
    assert two[7, 7] and two[16, 16] and two.sum() > m.sum()


def test_degenerate_polygons_are_not_boxes():
    # 4 numbers would be read by pycocotools as a box; as a polygon it is a line and encloses nothing
    line = mask_utils.from_polygons([[1, 1, 8, 8]], 10, 10)
    assert mask_utils.area(line) == 0
    mixed = mask_utils.from_polygons([[1, 1, 8, 8], [0, 0, 5, 0, 5, 5, 0, 5]], 10, 10)
    assert mask_utils.decode(mixed)[2, 2] and mask_utils.area(mixed) <= 36
    assert mask_utils.area(mask_utils.from_polygons([], 10, 10)) == 0
    flat = mask_utils.from_polygons([0, 0, 5, 0, 5, 5, 0, 5], 10, 10)  # a single flat polygon
    assert flat == mask_utils.from_polygons([[0, 0, 5, 0, 5, 5, 0, 5]], 10, 10)
    with pytest.raises(ValueError):
        mask_utils.from_polygons([[0, 0, 5, 0, 5]], 10, 10)


def test_normalize_all_forms():
    m = np.zeros((8, 8), bool)
    m[2:5, 2:5] = True
    rle = mask_utils.encode(m)
    assert mask_utils.normalize(None, 8, 8) is None
    assert mask_utils.normalize(rle, 8, 8) == rle
    poly = mask_utils.normalize([[2, 2, 5, 2, 5, 5, 2, 5]], 8, 8)
    assert poly["size"] == [8, 8] and isinstance(poly["counts"], str)
    assert mask_utils.decode(poly)[3, 3]
    assert mask_utils.normalize(_uncompressed(m), 8, 8) == rle


@pytest.mark.parametrize("shape", [(5, 17, 23), (3, 1, 9), (3, 9, 1), (1, 1, 1)])
def test_encode_tensor_equals_pycocotools(shape):
    """Run boundaries found with torch give exactly pycocotools' RLEs (empty, full, first pixel set, thin)."""
    import torch

    g = np.random.default_rng(sum(shape))
    masks = g.random(shape) < 0.4
    masks[0] = False
    if len(masks) > 1:
        masks[1] = True
    if len(masks) > 2:
        masks[2, 0, 0] = True
    assert mask_utils.encode_tensor(torch.from_numpy(masks)) == mask_utils.encode_many(masks)
    assert mask_utils.encode_tensor(torch.zeros(0, 4, 4, dtype=torch.bool)) == []


def test_to_coco_takes_every_counts_form_to_pycocotools_bytes():
    rng = np.random.default_rng(3)
    m = _random_mask(rng, 9, 11)
    rle = mask_utils.encode(m)
    coco = mask_utils.to_coco(rle)
    assert isinstance(coco["counts"], bytes) and coco["size"] == [9, 11]
    assert mask_utils.to_coco(coco) is coco  # already converted: used as it is
    runs = mask_utils.run_lengths(rle["counts"]).tolist()
    from_list = mask_utils.to_coco({"size": [9, 11], "counts": runs})
    assert from_list["counts"] == coco["counts"]


def _dense_iou(a: np.ndarray, b: np.ndarray, crowd: bool = False) -> float:
    inter = (a & b).sum()
    union = a.sum() if crowd else (a | b).sum()
    return float(inter / union) if union else 0.0


@pytest.mark.parametrize("crowd", [False, True])
def test_iou_matches_pixel_counts(crowd):
    rng = np.random.default_rng(4)
    a = [_random_mask(rng, 20, 24, p) for p in (0.1, 0.4, 0.7)]
    b = [_random_mask(rng, 20, 24, p) for p in (0.2, 0.5)]
    got = mask_utils.iou([mask_utils.encode(m) for m in a], [mask_utils.encode(m) for m in b], crowd=crowd)
    assert got.shape == (3, 2) and got.dtype == np.float64
    want = np.array([[_dense_iou(x, y, crowd) for y in b] for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_iou_per_mask_crowd_flags_and_empty_inputs():
    rng = np.random.default_rng(5)
    a, b0, b1 = (_random_mask(rng, 8, 8, 0.5) for _ in range(3))
    rle = mask_utils.encode
    got = mask_utils.iou([rle(a)], [rle(b0), rle(b1)], crowd=[False, True])
    np.testing.assert_allclose(got, [[_dense_iou(a, b0), _dense_iou(a, b1, crowd=True)]])
    assert mask_utils.iou([], [rle(a)]).shape == (0, 1)
    assert mask_utils.iou([rle(a)], []).shape == (1, 0)
    empty = mask_utils.empty(8, 8)
    assert mask_utils.iou([empty], [empty])[0, 0] == 0.0


def test_areas_of_many_masks_in_chunks():
    rng = np.random.default_rng(6)
    ms = [_random_mask(rng, 6, 7, p) for p in np.linspace(0, 1, 600)]  # more than one pycocotools chunk
    got = mask_utils.areas([mask_utils.encode(m) for m in ms])
    assert got.dtype == np.int64 and got.tolist() == [int(m.sum()) for m in ms]
    assert mask_utils.areas([]).shape == (0,)


def test_merge_union_and_intersection():
    rng = np.random.default_rng(7)
    ms = [_random_mask(rng, 12, 10, 0.4) for _ in range(3)]
    rles = [mask_utils.encode(m) for m in ms]
    union = mask_utils.merge(rles)
    assert isinstance(union["counts"], str)
    assert np.array_equal(mask_utils.decode(union), ms[0] | ms[1] | ms[2])
    assert np.array_equal(mask_utils.decode(mask_utils.merge(rles, intersect=True)), ms[0] & ms[1] & ms[2])
    with pytest.raises(ValueError, match="at least one"):
        mask_utils.merge([])
