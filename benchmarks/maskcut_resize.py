"""Cost of resizing as CutLER does (exact) against the approximations uvis used before, per batch.

- frames -> 480x480: ``uvis.features.dino.preprocess`` (PIL's Lanczos, exact) vs torch's antialiased bicubic;
- patch masks -> frame: ``uvis.pseudo.maskcut.upsample_masks`` (nearest to 480, PIL bicubic, > max/2, exact) vs
  bilinear from the patch grid thresholded at 0.5.

``--engine torch`` times the integer torch restatement (what runs on a GPU) instead of PIL on the CPU. Each size
also checks that the torch restatement on ``--device`` gives PIL's pixels.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/maskcut_resize.py --device cpu
    PYTHONPATH=src python benchmarks/maskcut_resize.py --device cuda --batch-size 16
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from uvis.data.resample import pil_resize
from uvis.features.dino import IMAGENET_MEAN, IMAGENET_STD, normalise, preprocess
from uvis.pseudo.maskcut import upsample_masks


def approx_preprocess(frames: torch.Tensor, res: int) -> torch.Tensor:
    """The previous ``preprocess``: torch's antialiased bicubic, in float."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    x = F.interpolate(x, size=(res, res), mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def approx_upsample(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The previous ``upsample_masks``: bilinear from the patch grid, > 0.5."""
    b, k, h, w = masks.shape
    up = F.interpolate(masks.float().view(b * k, 1, h, w), size=size, mode="bilinear", align_corners=False)
    return (up > 0.5).view(b, k, *size)


def exact_torch(frames: torch.Tensor) -> torch.Tensor:
    """``preprocess`` with the integer torch restatement (what a GPU runs) instead of PIL."""
    return normalise(pil_resize(frames.permute(0, 3, 1, 2), (480, 480), "lanczos", engine="torch"))


def timed(fn, device: torch.device, repeats: int) -> float:  # noqa: ANN001
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--masks", type=int, default=3)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--engine", default="auto", choices=["auto", "torch"])
    args = p.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    grid = 480 // args.patch
    print(f"device {device}; threads {torch.get_num_threads()}; batch {args.batch_size}; N {args.masks}; "
          f"patch {args.patch}; engine {args.engine} (seconds per batch)")
    for size in [(480, 854), (720, 1280)]:
        frames = rng.integers(0, 256, (args.batch_size, *size, 3), dtype=np.uint8)
        on_dev = torch.from_numpy(frames).to(device)
        masks = torch.from_numpy(rng.random((args.batch_size, args.masks, grid, grid)) > 0.7).to(device)
        src = frames if device.type == "cpu" else on_dev
        torch_engine = args.engine == "torch"
        exact = partial(exact_torch, on_dev) if torch_engine else partial(preprocess, src, 480, device=device)
        exact_frames = timed(exact, device, args.repeats)
        approx_frames = timed(partial(approx_preprocess, on_dev, 480), device, args.repeats)
        exact_masks = timed(partial(upsample_masks, masks, size, (480, 480), engine=args.engine), device,
                            args.repeats)
        approx_masks = timed(partial(approx_upsample, masks, size), device, args.repeats)
        # the torch restatement on this device against PIL itself (CPU), pixel for pixel
        same_frames = torch.equal(exact_torch(on_dev).cpu(), preprocess(frames, 480))
        same_masks = torch.equal(upsample_masks(masks, size, (480, 480), engine="torch").cpu(),
                                 upsample_masks(masks.cpu(), size, (480, 480), engine="pil"))
        print(f"{size[1]}x{size[0]}: frames->480 exact {exact_frames:.4f} vs approx {approx_frames:.4f}; "
              f"masks->frame exact {exact_masks:.4f} vs approx {approx_masks:.4f}; "
              f"torch on {device.type} == PIL: frames {same_frames}, masks {same_masks}")


if __name__ == "__main__":
    main()
