"""Wall time of ``python -m uvis --help`` (and ``uvis CMD --help``), repeated like hyperfine: mean, min, max.

    python benchmarks/cli_help.py                     # this checkout's src/
    python benchmarks/cli_help.py --src OTHER/src     # another version, e.g. one unpacked with git archive

Each run is a fresh interpreter, so the imports are what is measured (the page cache is warmed by one run first).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_command(args: list[str], src: Path, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, "-m", "uvis", *args], env=env, capture_output=True, check=False)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "uvis", *args], env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ folder holding the uvis to time")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--commands", default=",segment,run", help="comma-separated; empty = plain `uvis --help`")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; src {args.src}")
    for command in args.commands.split(","):
        cmd = [command, "--help"] if command else ["--help"]
        t = time_command(cmd, args.src, args.runs)
        print(f"python -m uvis {' '.join(cmd)}: mean {statistics.mean(t):.3f} s ± {statistics.stdev(t):.3f}, "
              f"min {min(t):.3f} s, max {max(t):.3f} s ({args.runs} runs)")


if __name__ == "__main__":
    main()
