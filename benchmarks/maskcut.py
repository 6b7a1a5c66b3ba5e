"""MaskCut throughput: decoded frames in, RLE masks out, with a per-stage breakdown.

Random DINO weights (speed does not depend on them). Frames come from ``shared/data/real-frames`` when
present (1280x720 JPEGs, decoded before timing), else synthetic frames of the same size.

    python benchmarks/maskcut.py --device cpu --backbones dino_vits8 dino_vitb8 --frames 2 --batch-size 1
    python benchmarks/maskcut.py --device cuda --frames 256 --batch-size 16            # H100: bf16 features
    python benchmarks/maskcut.py --device cuda --solver subspace --frames 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from uvis.features.backbones import VITS, build_vit
from uvis.features.dino import DinoFeatures
from uvis.pseudo.maskcut import MaskCut, MaskCutConfig, Timings

# real 1280x720 frames: $UVIS_BENCH_FRAMES (a folder of clip folders), else ../shared/data/real-frames
SHARED = Path(os.environ.get("UVIS_BENCH_FRAMES")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-frames")
STAGES = ["features", "affinity", "eigensolve", "postprocess", "upsample", "rle"]


def load_frames(count: int, size: tuple[int, int] = (720, 1280)) -> np.ndarray:
    """``count`` decoded RGB frames of one size (real ones when the shared data is here)."""
    from PIL import Image

    frames = []
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*/*.jpg")):
            with Image.open(path) as im:
                if im.size == (size[1], size[0]):
                    frames.append(np.asarray(im.convert("RGB")))
            if len(frames) == count:
                break
    rng = np.random.default_rng(0)
    while len(frames) < count:
        frames.append(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return np.stack(frames)


def bench(backbone: str, frames: np.ndarray, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = build_vit(VITS[backbone])
    feats = DinoFeatures(backbone, device=args.device, model=model, amp=not args.fp32)
    config = MaskCutConfig(resolution=args.resolution, num_masks=args.num_masks, solver=args.solver)
    runner = MaskCut(feats, config)
    batches = [frames[i : i + args.batch_size] for i in range(0, len(frames), args.batch_size)]
    for _ in range(args.warmup):  # first calls pay for kernels, allocator, cuSOLVER handles
        runner(batches[0])
    runner.timings = Timings(enabled=not args.no_breakdown)
    if feats.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    masks = 0
    for batch in batches:
        masks += sum(len(m) for m in runner(batch))
    if feats.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    row = {
        "backbone": backbone,
        "frames": len(frames),
        "batch_size": args.batch_size,
        "seconds": round(total, 3),
        "frames_per_s": round(len(frames) / total, 3),
        "masks_per_frame": round(masks / len(frames), 2),
        "breakdown_s_per_frame": {k: round(runner.timings.seconds.get(k, 0.0) / len(frames), 4) for k in STAGES},
    }
    if feats.device.type == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["amp"] = str(feats.amp_dtype)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["dino_vits8", "dino_vitb8"])
    p.add_argument("--device", default="auto")
    p.add_argument("--frames", type=int, default=4, help="timed frames per backbone")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--resolution", type=int, default=480)
    p.add_argument("--num-masks", type=int, default=3)
    p.add_argument("--solver", default="eigh", choices=["eigh", "subspace"])
    p.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    p.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast for the features on GPU")
    p.add_argument("--no-breakdown", action="store_true", help="no per-stage CUDA syncs (pure throughput)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    frames = load_frames(args.frames)
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device {dev}; torch {torch.__version__}; threads {torch.get_num_threads()}; frames {frames.shape}; "
          f"res {args.resolution}; N {args.num_masks}; solver {args.solver}")
    rows = []
    for backbone in args.backbones:
        row = bench(backbone, frames, args)
        rows.append(row)
        b = row["breakdown_s_per_frame"]
        print(f"{backbone}: {row['frames_per_s']} frames/s ({row['seconds']} s for {row['frames']} frames, batch "
              f"{row['batch_size']}, {row['masks_per_frame']} masks/frame); s/frame: "
              + ", ".join(f"{k} {v}" for k, v in b.items()) + (f"; peak {row['peak_gib']} GiB" if "peak_gib" in row else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev, "args": vars(args), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
