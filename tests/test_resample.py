"""uvis.data.resample reproduces PIL's Image.resize pixel for pixel (both engines, any pass order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from uvis.data.resample import installed_pillow_order, pil_resize, pil_weights, vertical_first

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "lanczos": Image.Resampling.LANCZOS}
needs_pillow13 = pytest.mark.skipif(installed_pillow_order() != "13", reason="compares with Pillow >= 13's pass order")


def pil(image: np.ndarray, size: tuple[int, int], filter: str) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), PIL_FILTERS[filter]))


@needs_pillow13
@pytest.mark.parametrize("filter", ["lanczos", "bicubic", "bilinear"])
def test_torch_engine_equals_pil(filter):
    rng = np.random.default_rng(0)
    # up, down, mixed, one side kept, and both pass orders (height shrinking by > 2x the width's pixels)
    shapes = [((37, 53), (71, 29)), ((120, 90), (30, 85)), ((64, 64), (64, 150)), ((90, 40), (20, 60)),
              ((480, 854), (480, 480)), ((720, 1280), (480, 480)), ((480, 480), (360, 640)), ((7, 5), (3, 2))]
    shapes += [(tuple(rng.integers(2, 160, 2)), tuple(rng.integers(2, 160, 2))) for _ in range(8)]
    assert any(vertical_first(a, b) for a, b in shapes) and not all(vertical_first(a, b) for a, b in shapes)
    for (h0, w0), (h1, w1) in shapes:
        image = rng.integers(0, 256, (int(h0), int(w0), 3), dtype=np.uint8)
        ours = pil_resize(torch.from_numpy(image).permute(2, 0, 1), (int(h1), int(w1)), filter, engine="torch")
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), pil(image, (int(h1), int(w1)), filter)), (h0, w0, h1, w1)


@needs_pillow13
def test_block_input_is_its_nearest_enlargement():
    rng = np.random.default_rng(1)
    cells = (rng.random((2, 3, 6, 5)) > 0.5).astype(np.uint8) * 255
    for size in [(40, 70), (96, 40), (13, 9), (48, 40)]:
        for engine in ("torch", "pil"):
            ours = pil_resize(torch.from_numpy(cells), size, "bicubic", block=(8, 8), engine=engine).numpy()
            for i in range(2):
                for j in range(3):
                    big = cells[i, j].repeat(8, 0).repeat(8, 1)
                    assert np.array_equal(ours[i, j], pil(big, size, "bicubic")), (size, engine)


def test_older_pillow_order_runs_horizontal_first():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (90, 40), dtype=np.uint8)
    assert vertical_first((90, 40), (20, 60)) and not vertical_first((90, 40), (20, 60), "12")
    old = pil_resize(torch.from_numpy(image), (20, 60), "lanczos", pillow="12", engine="torch").numpy()
    two_calls = pil(pil(image, (90, 60), "lanczos"), (20, 60), "lanczos")  # one side per call: no order to pick
    assert np.array_equal(old, two_calls)


def test_weights_are_pillows_fixed_point():
    index, weight = pil_weights(10, 5, "bilinear")  # 2x down: a triangle twice as wide, centred on 5.0
    one = 1 << 22
    assert weight[2].tolist() == [one // 8, 3 * one // 8, 3 * one // 8, one // 8] and index[2].tolist() == [3, 4, 5, 6]
    assert (weight.sum(1) == one).all()
    cells_index, cells_weight = pil_weights(10, 5, "bilinear", block=2)  # pairs of pixels summed per cell
    assert cells_index[2].tolist()[:3] == [1, 2, 3] and cells_weight[2].tolist()[:3] == [one // 8, 3 * one // 4, one // 8]
    with pytest.raises(ValueError, match="filter"):
        pil_weights(10, 5, "box")
    with pytest.raises(ValueError, match="engine"):
        pil_resize(torch.zeros(4, 4, dtype=torch.uint8), (2, 2), engine="numpy")


@needs_pillow13
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs in benchmarks/gpu/run_all.sh 3)")
def test_torch_engine_on_cuda_equals_pil():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 3, 720, 1280), dtype=np.uint8)
    ours = pil_resize(torch.from_numpy(frames).cuda(), (480, 480), "lanczos", engine="torch").cpu()
    assert torch.equal(ours, pil_resize(torch.from_numpy(frames), (480, 480), "lanczos", engine="pil"))
    cells = torch.from_numpy((rng.random((2, 3, 60, 60)) > 0.7).astype(np.uint8) * 255)
    ours = pil_resize(cells.cuda(), (360, 640), "bicubic", block=(8, 8), engine="torch").cpu()
    assert torch.equal(ours, pil_resize(cells, (360, 640), "bicubic", block=(8, 8), engine="pil"))
