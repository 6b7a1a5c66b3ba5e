"""Training speed and peak memory of the stage-2 VIS model (one process, synthetic in-memory batches).

Measures the full optimisation step (forward under autocast, Hungarian matching and point-sampled loss,
backward, clipping, AdamW) on random frames with ``--objects`` random blob masks each, so data loading is
excluded. CUDA timings synchronise before reading the clock; peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak RSS on CPU.

    python benchmarks/train.py --device cuda --config default --height 360 --width 640 --batch-size 8
    python benchmarks/train.py --device cpu --config tiny --height 64 --width 96 --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from uvis.model import ModelConfig, build_model  # noqa: E402
from uvis.model.loss import LossConfig, SetCriterion  # noqa: E402
from uvis.train.trainer import WarmupPoly, amp_dtype, optimization_step, pick_device  # noqa: E402


def random_batch(b: int, h: int, w: int, objects: int, num_classes: int, g: torch.Generator):
    images = torch.rand(b, 3, h, w, generator=g)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    targets = []
    for _ in range(b):
        c = torch.rand(objects, 2, generator=g) * torch.tensor([h, w])
        r = (0.05 + 0.2 * torch.rand(objects, generator=g)) * min(h, w)
        masks = ((yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2) <= r[:, None, None] ** 2
        targets.append({"labels": torch.randint(0, num_classes, (objects,), generator=g), "masks": masks})
    return images, targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--config", default="default", choices=["tiny", "default"])
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--objects", type=int, default=5, help="target masks per frame")
    ap.add_argument("--classes", type=int, default=40, help="K (40 = YouTube-VIS 2019)")
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--iters", type=int, default=10, help="timed steps")
    ap.add_argument("--num-points", type=int, default=12544, help="loss points per mask (Mask2Former: 112^2)")
    args = ap.parse_args()

    device = pick_device(args.device)
    dtype = amp_dtype(args.amp, device)
    torch.manual_seed(0)
    cfg = ModelConfig.preset(args.config, args.classes)
    model = build_model(cfg).to(device)
    criterion = SetCriterion(cfg.num_classes, LossConfig(num_points=args.num_points)).to(device)
    opt = torch.optim.AdamW(model.param_groups(1e-4, 0.1, 0.05), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupPoly(10_000, 10, 0.9))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    g = torch.Generator().manual_seed(0)
    batches = [random_batch(args.batch_size, args.height, args.width, args.objects, cfg.num_classes, g) for _ in range(2)]
    if device.type == "cuda":  # pinned, as the trainer's data loader delivers them (fast, asynchronous uploads)
        batches = [(im.pin_memory(), [{k: v.pin_memory() for k, v in t.items()} for t in tg]) for im, tg in batches]

    def step(i: int) -> float:
        images, targets = batches[i % 2]
        return float(optimization_step(model, criterion, opt, sched, scaler, images, targets, device=device, amp=dtype,
                                       clip_grad=0.01)["loss"])

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.iters):
        loss = step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        dev_name = torch.cuda.get_device_name()
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        dev_name = f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    print(json.dumps({
        "device": dev_name, "config": args.config, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "input": f"{args.batch_size}x3x{args.height}x{args.width}", "amp": str(dtype), "iters": args.iters,
        "it_per_s": round(args.iters / dt, 3), "frames_per_s": round(args.iters * args.batch_size / dt, 2),
        "peak_memory_MiB": round(peak_mb, 1), "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda"
        else "process peak RSS", "last_loss": round(loss, 3), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
