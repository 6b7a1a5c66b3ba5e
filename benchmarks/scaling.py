"""Wall time of ``uvis pseudo-label`` on one process against torchrun jobs of several processes.

Synthetic videos (``uvis.data.synthetic``) and random DINO weights in the official layout (speed does not depend
on the weights). Each job labels the same videos into its own folder; the script then checks that every job's
parts equal the one-process parts (but for their wall-clock ``seconds``) and times a rerun of the finished
folder, which is the launch cost alone (start, imports, process group, nothing left to label).

    python benchmarks/scaling.py --device cpu --nproc 1 2                  # here (CPU, gloo)
    python benchmarks/scaling.py --device cuda --nproc 1 all --backbone dino_vitb8 --videos 16 --frames 24 \\
        --size 480x854 --resolution 480                                    # a GPU machine (nccl, every GPU)

``--nproc 1`` is one plain process (no torchrun); ``N > 1`` is ``torchrun --standalone --nproc-per-node N``.
Every process runs with ``--threads`` CPU threads (default 1, what torchrun gives each of its processes), so N
processes use N cores against one process's one, and their outputs are equal to the bit (floating-point
reductions split over another thread count may round differently).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src"


def _prepare(work: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    from uvis.data.synthetic import make_dataset
    from uvis.features import backbones

    height, width = (int(x) for x in args.size.lower().split("x"))
    data = work / "data"
    make_dataset(data, num_videos=args.videos, num_frames=args.frames, height=height, width=width, num_objects=3,
                 seed=0, image_format="jpg")
    torch.manual_seed(0)
    weights = work / "dino.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS[args.backbone])), weights)
    return data, weights


def _command(nproc: int, rest: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "uvis", *rest]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "uvis",
            *rest]


def _timed(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds


def _parts(folder: Path) -> dict[str, dict]:
    out = {}
    for p in sorted((folder / "videos").glob("*.json")):
        part = json.loads(p.read_text())
        part.pop("seconds", None)
        out[p.name] = part
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nproc", nargs="+", default=["1", "2"], help="process counts; 'all' = every visible GPU")
    ap.add_argument("--backbone", default="dino_vits16")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="120x160", help="frame size HxW")
    ap.add_argument("--resolution", type=int, default=128, help="MaskCut input size")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    counts = [torch.cuda.device_count() if n == "all" else int(n) for n in args.nproc]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, weights = _prepare(work, args)
        rows, reference = [], None
        for n in counts:
            out = work / f"out-{n}"
            rest = ["pseudo-label", str(data), "--out", str(out), "--dino", args.backbone, "--dino-weights",
                    str(weights), "--resolution", str(args.resolution), "--batch-size", str(args.batch_size),
                    "--device", args.device, "--no-progress"]
            seconds = _timed(_command(n, rest), args.threads)
            launch = _timed(_command(n, rest), args.threads)  # the finished folder again: launch cost only
            parts = _parts(out)
            reference = reference if reference is not None else parts
            rows.append({"processes": n, "wall_s": round(seconds, 2), "launch_s": round(launch, 2),
                         "work_s": round(seconds - launch, 2), "same_as_first": parts == reference})
            print(json.dumps(rows[-1]), flush=True)
    frames = args.videos * args.frames
    for row in rows:
        row["frames_per_s"] = round(frames / row["wall_s"], 2)
        row["speedup_wall"] = round(rows[0]["wall_s"] / row["wall_s"], 2)
        row["speedup_work"] = round(rows[0]["work_s"] / row["work_s"], 2) if row["work_s"] > 0 else None
    result = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
                         + (f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
                            if torch.cuda.is_available() else ""),
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]), "frames": frames, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
