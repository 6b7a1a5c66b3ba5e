"""MaskCut's eigensolve on structured graphs from real frames: time per cut and agreement between solvers.

Random DINO weights give a complete, degenerate patch graph (see RESULTS.md), so solver speed and agreement
are measured here on graphs built from real DAVIS-2016 frames with colour-patch features (each node = the
mean-centred RGB values of its 8x8 patch) binarised at tau, the same graph construction MaskCut uses on DINO
keys. Compared, per cut, against the float64 generalised problem (D - A) x = lambda D x:

- ``lanczos``: what ``--solver eigh`` runs on the CPU (ARPACK through scipy, as the reference does);
- ``evx``: LAPACK's subset driver (the previous CPU path);
- ``torch-eigh``: the full batched ``torch.linalg.eigh`` (what ``--solver eigh`` runs on CUDA);
- ``subspace``: ``--solver subspace``.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/maskcut_eigensolvers.py --frames 8
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from PIL import Image

from uvis.pseudo import maskcut as mc

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis2016" / "JPEGImages"


def colour_graph(path: Path, resolution: int, patch: int, tau: float) -> torch.Tensor:
    """[1, n, n] binary affinity of one frame's colour patches."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB").resize((resolution, resolution), Image.BICUBIC), dtype=np.float32) / 255
    g = resolution // patch
    x = rgb[: g * patch, : g * patch].reshape(g, patch, g, patch, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, -1)
    return mc.binary_affinity(torch.from_numpy(x - x.mean(0))[None], tau, 1e-5)


def solve(name: str, a: torch.Tensor) -> torch.Tensor:
    if name == "lanczos":
        return mc.second_eigenvector(a, solver="eigh")
    if name == "subspace":
        return mc.second_eigenvector(a, solver="subspace")
    d = a.sum(-1)
    m = d.rsqrt()[:, :, None] * a * d.rsqrt()[:, None, :]
    lap = torch.eye(a.shape[-1]) - m
    if name == "evx":
        y = torch.from_numpy(scipy.linalg.eigh(lap[0].numpy(), subset_by_index=[1, 1], driver="evx")[1][:, 0])[None]
    else:
        y = torch.linalg.eigh(lap)[1][..., 1]
    return d.rsqrt() * y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8, help="frames drawn at random from DAVIS-2016")
    p.add_argument("--resolution", type=int, default=480)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--tau", type=float, default=0.15)
    p.add_argument("--solvers", nargs="+", default=["lanczos", "evx", "torch-eigh", "subspace"])
    args = p.parse_args()
    paths = sorted(DAVIS.rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no frames under {DAVIS}: this benchmark needs ../shared/data/davis2016")
    rng = np.random.default_rng(0)
    chosen = [paths[i] for i in rng.choice(len(paths), args.frames, replace=False)]
    print(f"{platform.processor() or platform.machine()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{args.frames} frames, {args.resolution}px / patch {args.patch} = {(args.resolution // args.patch) ** 2} nodes")
    times: dict[str, list[float]] = {s: [] for s in args.solvers}
    agree: dict[str, list[float]] = {s: [] for s in args.solvers}
    for path in chosen:
        a = colour_graph(path, args.resolution, args.patch, args.tau)
        an = a[0].double().numpy()
        deg = np.diag(an.sum(1))
        ref = scipy.linalg.eigh(deg - an, deg, subset_by_index=[1, 1])[1][:, 0]
        for name in args.solvers:
            t0 = time.perf_counter()
            vec = solve(name, a)[0].double().numpy()
            times[name].append(time.perf_counter() - t0)
            vec /= np.sqrt(vec @ deg @ vec)
            agree[name].append(abs(vec @ deg @ ref))  # |cos| in the D inner product; 1 = same vector
    print("| solver | s per cut (median) | min / max | min agreement with float64 |")
    print("|---|---|---|---|")
    for name in args.solvers:
        t = np.array(times[name])
        print(f"| {name} | {np.median(t):.3f} | {t.min():.3f} / {t.max():.3f} | {min(agree[name]):.6f} |")


if __name__ == "__main__":
    main()
