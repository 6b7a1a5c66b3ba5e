"""Throughput of CLIP naming (stage 1b): masks per second, crops + image encoder, on CPU or CUDA.

Uses a full-size architecture (default ViT-B-32) with random weights: the cost is the real one, the
labels are meaningless. Frames are synthetic 854x480 images with ``--masks-per-frame`` random boxes.

    OMP_NUM_THREADS=2 python benchmarks/naming.py --device cpu --frames 8 --masks-per-frame 8
    python benchmarks/naming.py --device cuda --frames 200 --masks-per-frame 8 --batch-size 256

Prints one JSON line: masks/s end to end (crop + background + encode), and for the encoder alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from uvis.pseudo.clip_model import ClipConfig, random_clip
from uvis.pseudo.naming import NamingConfig, crop_masks, embed_masks, frame_tensor


def synthetic(frames: int, masks: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        ms = []
        for _ in range(masks):
            bh, bw = rng.integers(h // 10, h // 2), rng.integers(w // 10, w // 2)
            y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
            m = np.zeros((h, w), bool)
            m[y:y + bh, x:x + bw] = True
            ms.append(m)
        out.append((frame, ms))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--device", default=None)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--masks-per-frame", type=int, default=8)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--background", default="blur", choices=["blur", "grey", "keep"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    clip = random_clip(ClipConfig(model_name=args.model, device=args.device))
    cfg = NamingConfig(background=args.background, batch_size=args.batch_size)
    data = synthetic(args.frames, args.masks_per_frame, args.height, args.width)
    n = args.frames * args.masks_per_frame

    list(embed_masks(clip, data[:1], cfg))  # warm-up (kernels, autocast, allocator)
    sync(clip.device)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = torch.cat(list(embed_masks(clip, data, cfg)))
        sync(clip.device)
        times.append(time.perf_counter() - t0)
    assert out.shape[0] == n

    crops, _ = crop_masks(frame_tensor(data[0][0], clip.device), data[0][1], cfg, clip.image_size, clip.mean)
    batch = crops.repeat((args.batch_size + len(crops) - 1) // len(crops), 1, 1, 1)[:args.batch_size]
    clip.encode_images(batch)
    sync(clip.device)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        clip.encode_images(batch)
    sync(clip.device)
    enc = args.repeats * len(batch) / (time.perf_counter() - t0)

    dev = torch.cuda.get_device_name(clip.device) if clip.device.type == "cuda" else platform.processor() or "cpu"
    print(json.dumps({
        "model": args.model, "device": str(clip.device), "device_name": dev, "threads": torch.get_num_threads(),
        "frame": f"{args.width}x{args.height}", "masks": n, "batch_size": args.batch_size,
        "background": args.background, "masks_per_s": round(n / min(times), 1),
        "encoder_only_masks_per_s": round(enc, 1),
    }))


if __name__ == "__main__":
    main()
