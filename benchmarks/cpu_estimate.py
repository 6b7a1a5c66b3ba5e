"""How close the CPU time estimate (``uvis.features.dino.cpu_seconds_per_frame``) is to DINO's real forward pass.

Times the forward pass of each DINO ViT (uvis's own model, random weights: the cost does not depend on them) on
one frame at ``--resolution`` on this CPU, next to the estimate printed before MaskCut jobs.

    PYTHONPATH=src python benchmarks/cpu_estimate.py --backbones dino_vits16,dino_vitb8
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from uvis.features.backbones import VITS, build_vit
from uvis.features.dino import cpu_seconds_per_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", default="dino_vits16,dino_vitb8")
    ap.add_argument("--resolution", type=int, default=480)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in args.backbones.split(","):
        model = build_vit(VITS[name]).eval()
        x = torch.randn(1, 3, args.resolution, args.resolution)
        with torch.inference_mode():
            model(x)  # warm-up
            start = time.perf_counter()
            model(x)
            measured = time.perf_counter() - start
        estimate = cpu_seconds_per_frame(name, args.resolution)
        print(f"{name} at {args.resolution} px: measured {measured:.1f} s, estimate {estimate:.1f} s "
              f"(x{estimate / measured:.2f})")


if __name__ == "__main__":
    main()
