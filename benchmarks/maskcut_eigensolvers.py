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
    PYTHONPATH=src python benchmarks/maskcut_eigensolvers.py --frames 64 --device cuda --batch-size 16 \
        --solvers torch-eigh subspace --davis data/davis2016   # GPU: the batched solvers
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

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis2016"


def colour_graph(path: Path, resolution: int, patch: int, tau: float) -> torch.Tensor:
    """[1, n, n] binary affinity of one frame's colour patches."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB").resize((resolution, resolution), Image.BICUBIC), dtype=np.float32) / 255
    g = resolution // patch
    x = rgb[: g * patch, : g * patch].reshape(g, patch, g, patch, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, -1)
    return mc.binary_affinity(torch.from_numpy(x - x.mean(0))[None], tau, 1e-5)


CPU_ONLY = ("lanczos", "evx")  # frame by frame on the host; the others run batched on --device


def solve(name: str, a: torch.Tensor) -> torch.Tensor:
    """Second generalised eigenvectors of a [B, n, n] batch of graphs with one solver."""
    if name == "lanczos":
        return mc.second_eigenvector(a.cpu(), solver="eigh")
    if name == "subspace":
        return mc.second_eigenvector(a, solver="subspace")
    d = a.sum(-1)
    m = d.rsqrt()[:, :, None] * a * d.rsqrt()[:, None, :]
    lap = torch.eye(a.shape[-1], device=a.device) - m
    if name == "evx":
        y = torch.stack([torch.from_numpy(scipy.linalg.eigh(x.cpu().numpy(), subset_by_index=[1, 1],
                                                            driver="evx")[1][:, 0]) for x in lap])
        return d.rsqrt().cpu() * y
    return d.rsqrt() * torch.linalg.eigh(lap)[1][..., 1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8, help="frames drawn at random from DAVIS-2016")
    p.add_argument("--resolution", type=int, default=480)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--tau", type=float, default=0.15)
    p.add_argument("--solvers", nargs="+", default=["lanczos", "evx", "torch-eigh", "subspace"])
    p.add_argument("--device", default="cpu", help="where torch-eigh and subspace run (e.g. cuda)")
    p.add_argument("--batch-size", type=int, default=1, help="graphs per batched call of torch-eigh / subspace")
    p.add_argument("--davis", default=str(DAVIS), help="a folder of DAVIS frames (default: ../shared/data/davis2016)")
    args = p.parse_args()
    device = torch.device(args.device)
    paths = sorted(Path(args.davis).rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no frames under {args.davis}: pass --davis with a folder of DAVIS-2016 JPEG frames")
    rng = np.random.default_rng(0)
    chosen = [paths[i] for i in rng.choice(len(paths), args.frames, replace=False)]
    print(f"{platform.processor() or platform.machine()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"device {device}; {args.frames} frames, {args.resolution}px / patch {args.patch} = "
          f"{(args.resolution // args.patch) ** 2} nodes; batch {args.batch_size}")
    graphs = torch.cat([colour_graph(path, args.resolution, args.patch, args.tau) for path in chosen])
    refs = []
    t0 = time.perf_counter()
    for a in graphs:  # (D - A) x = lambda D x in its symmetric form, x = D^-1/2 y: the same vector at half the cost
        an = a.double().numpy()
        deg = an.sum(1)
        isqrt = 1 / np.sqrt(deg)
        lap = np.eye(len(an)) - isqrt[:, None] * an * isqrt[None, :]
        refs.append((deg, isqrt * scipy.linalg.eigh(lap, subset_by_index=[1, 1], driver="evr")[1][:, 0]))
    print(f"float64 references: {time.perf_counter() - t0:.1f} s")
    print("| solver | s per cut (median over batches, per graph) | min / max | worst agreement with float64 |")
    print("|---|---|---|---|")
    for name in args.solvers:
        size = 1 if name in CPU_ONLY else args.batch_size
        where = torch.device("cpu") if name in CPU_ONLY else device
        if where.type == "cuda":  # warm-up: kernels, cuSOLVER handles
            solve(name, graphs[:size].to(where))
        times, agree = [], []
        for i in range(0, len(graphs), size):
            batch = graphs[i : i + size].to(where)
            _sync(where)
            t0 = time.perf_counter()
            vecs = solve(name, batch)
            _sync(where)
            times.append((time.perf_counter() - t0) / len(batch))
            for vec, (deg, ref) in zip(vecs.double().cpu().numpy(), refs[i : i + size], strict=True):
                vec = vec / np.sqrt(vec @ (deg * vec))
                agree.append(abs(vec @ (deg * ref)))  # |cos| in the D inner product; 1 = same vector
        t = np.array(times)
        print(f"| {name} | {np.median(t):.4f} | {t.min():.4f} / {t.max():.4f} | {min(agree):.6f} |")


if __name__ == "__main__":
    main()
