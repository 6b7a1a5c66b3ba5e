"""uvis MaskCut against CutLER's own ``maskcut/maskcut.py`` on real frames: mask agreement and speed, one run.

Both sides load the same hand-built DINO-layout checkpoint (``structured_dino.py``: keys a deterministic function
of colour, texture and position; random weights give a complete graph). The reference runs from a CutLER
checkout given with ``--cutler`` (``maskcut/`` plus ``third_party/TokenCut``; its code is imported from there and
never copied here): ``maskcut()`` per image file, then the lines of its main loop up to ``create_annotation_info``
(without ``--crf``: the CRF lines left out; with it: as written). uvis runs ``uvis.pseudo.maskcut.MaskCut`` on the
frame decoded by ``uvis.data.video.read_image``. Same tau (0.15), N (3), 480 px, one frame at a time, CPU.

Reported: frames whose masks are identical pixel for pixel (same number, same order), matched-mask IoU, and the
cuts where the eigenvector's sign matters. LAPACK's sign is arbitrary; the reference's corner rule only acts
when the eigenvector is positive at its peak, uvis fixes that sign (see ``uvis/pseudo/maskcut.py``). A cut is
*sign-sensitive* when LAPACK returned it negative at the peak and the corner rule would flip it under the positive
sign: only there may the two differ. Frames that differ are run again through the reference with the sign made
positive at the peak ("reference, sign fixed"), which must then agree.

    git clone https://github.com/facebookresearch/CutLER /tmp/CutLER   # and its third_party/TokenCut submodule
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/maskcut_vs_cutler.py --cutler /tmp/CutLER \\
        --backbone dino_vits16 --per-sequence 2 --real 2 --json vs_cutler_s16.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structured_dino import save_structured_vit  # noqa: E402
from uvis.data import masks as mask_utils  # noqa: E402
from uvis.data.video import read_image  # noqa: E402
from uvis.features.backbones import VITS  # noqa: E402
from uvis.features.dino import DinoFeatures  # noqa: E402
from uvis.pseudo.maskcut import MaskCut, MaskCutConfig  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pick_frames(davis: Path, real: Path, per_sequence: int, n_real: int) -> list[Path]:
    """Evenly spaced frames of each DAVIS sequence (854x480), then the first frames of the real clips."""
    out: list[Path] = []
    for seq in sorted((davis / "JPEGImages" / "480p").iterdir()) if davis.is_dir() else []:
        files = sorted(seq.glob("*.jpg"))
        out += [files[int(i)] for i in np.linspace(0, len(files) - 1, per_sequence + 2)[1:-1]]
    clips = sorted(p for p in real.iterdir() if p.is_dir()) if real.is_dir() else []
    out += [sorted(c.glob("*.jpg"))[0] for c in clips[:n_real]]
    return out


class Reference:
    """CutLER's maskcut.py, imported from a checkout, with its eigenvector calls watched (and optionally signed)."""

    def __init__(self, root: Path, weights: Path, arch: str, patch: int, tau: float, crf: bool):
        sys.path[:0] = [str(root / "maskcut"), str(root / "third_party")]
        try:
            import pydensecrf.densecrf  # noqa: F401
        except ImportError:
            if crf:
                raise SystemExit("--crf needs pydensecrf (pip install pydensecrf2)") from None
            stub = types.ModuleType("crf")  # maskcut.py imports it at the top; without --crf it is never called
            stub.densecrf = None  # type: ignore[attr-defined]
            sys.modules["crf"] = stub
        import dino as ref_dino  # CutLER's maskcut/dino.py

        import maskcut as ref  # CutLER's maskcut/maskcut.py (not benchmarks/maskcut.py: the checkout comes first)

        for module in (ref, ref_dino):
            if not Path(module.__file__).resolve().is_relative_to(root.resolve()):
                raise SystemExit(f"imported {module.__file__}, not the CutLER checkout's")

        self.ref, self.patch, self.tau, self.crf = ref, patch, tau, crf
        hub = tempfile.mkdtemp(prefix="cutler-hub-")
        torch.hub.set_dir(hub)  # ViTFeat loads with load_state_dict_from_url: a file:// URL copies it there
        self.backbone = ref_dino.ViTFeat(weights.resolve().as_uri(), 384, arch, "k", patch).eval()
        self.original_eig = ref.second_smallest_eigenvector
        self.cuts: list[dict] = []
        self.fix_sign = False
        ref.second_smallest_eigenvector = self._eig

    def _eig(self, a: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eigenvec, vec = self.original_eig(a, d)
        peak = int(np.argmax(np.abs(vec)))
        negative = bool(vec[peak] < 0)
        positive = -vec if negative else vec
        side = int(round(np.sqrt(len(vec))))
        corners = int(self.ref.check_num_fg_corners(positive > positive.mean(), [side, side]))
        self.cuts.append({"negative_at_peak": negative, "corner_rule_acts": corners >= 3})
        if self.fix_sign and negative:
            return -eigenvec, -vec
        return eigenvec, vec

    def __call__(self, path: Path) -> list[np.ndarray]:
        from PIL import Image
        from scipy import ndimage

        ref = self.ref
        bipartitions, _, i_new = ref.maskcut(str(path), self.backbone, self.patch, self.tau, N=3, fixed_size=480,
                                             cpu=True)
        width, height = Image.open(path).convert("RGB").size
        out = []
        for bipartition in bipartitions:  # the main loop of maskcut.py
            if self.crf:
                pseudo_mask = ref.densecrf(np.array(i_new), bipartition)
                pseudo_mask = ndimage.binary_fill_holes(pseudo_mask >= 0.5)
                if ref.metric.IoU(torch.from_numpy(bipartition), torch.from_numpy(pseudo_mask)) < 0.5:
                    pseudo_mask = pseudo_mask * -1
            else:
                pseudo_mask = bipartition
            pseudo_mask[pseudo_mask < 0] = 0
            pseudo_mask = Image.fromarray(np.uint8(pseudo_mask * 255))
            pseudo_mask = np.asarray(pseudo_mask.resize((width, height)))
            ann = ref.create_annotation_info(1, 1, {"id": 1, "is_crowd": 0}, pseudo_mask.astype(np.uint8), None)
            if ann is not None:
                rle = dict(ann["segmentation"])
                out.append(mask_utils.decode({"size": rle["size"], "counts": rle["counts"]}).astype(bool))
        return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compare(ours: list[np.ndarray], theirs: list[np.ndarray]) -> dict:
    """Identical (same count, order, pixels); and each reference mask's best IoU among ours."""
    same = len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    best = [max((iou(t, o) for o in ours), default=0.0) for t in theirs]
    return {"identical": same, "n_ours": len(ours), "n_ref": len(theirs), "best_iou": best,
            "pixels_differing": int(sum(np.logical_xor(a, b).sum() for a, b in zip(ours, theirs, strict=False)))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cutler", type=Path, required=True, help="a CutLER checkout with third_party/TokenCut")
    p.add_argument("--backbone", default="dino_vits16", choices=["dino_vits16", "dino_vits8"])
    p.add_argument("--davis", type=Path, default=SHARED / "davis2016")
    p.add_argument("--real-frames", type=Path, default=SHARED / "real-frames")
    p.add_argument("--per-sequence", type=int, default=2, help="frames per DAVIS sequence")
    p.add_argument("--real", type=int, default=2, help="frames from the real 1280x720 clips")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--no-warmup", action="store_true", help="time the first frame too (slow backbones)")
    p.add_argument("--tau", type=float, default=0.15)
    p.add_argument("--crf", action="store_true", help="both sides with the dense CRF (needs pydensecrf2)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    arch = VITS[args.backbone]
    work = Path(tempfile.mkdtemp(prefix="structured-dino-"))
    weights = save_structured_vit(args.backbone, work / arch.spec.filename)
    reference = Reference(args.cutler, weights, "small", arch.patch_size, args.tau, args.crf)
    runner = MaskCut(DinoFeatures(args.backbone, weights, device="cpu"),
                     MaskCutConfig(tau=args.tau, num_masks=3, crf=args.crf))
    frames = pick_frames(args.davis, args.real_frames, args.per_sequence, args.real)[: args.max_frames]
    print(f"{platform.processor() or 'cpu'}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{args.backbone}; {len(frames)} frames; crf {args.crf}", flush=True)
    if not args.no_warmup:  # untimed, both sides
        runner(read_image(frames[0])[None])
        reference(frames[0])
        reference.cuts.clear()
    rows, t_ours, t_ref = [], 0.0, 0.0
    for path in frames:
        t0 = time.perf_counter()
        ours = [mask_utils.decode(m.rle).astype(bool) for m in runner(read_image(path)[None])[0]]
        t1 = time.perf_counter()
        before = len(reference.cuts)
        theirs = reference(path)
        t2 = time.perf_counter()
        t_ours, t_ref = t_ours + t1 - t0, t_ref + t2 - t1
        cuts = reference.cuts[before:]
        row = {"frame": str(path.relative_to(path.parents[1])), "size": list(ours[0].shape) if ours else None,
               **compare(ours, theirs), "sign_sensitive_cuts": sum(c["negative_at_peak"] and c["corner_rule_acts"]
                                                                   for c in cuts)}
        if not row["identical"]:
            reference.fix_sign = True
            row["identical_to_sign_fixed_reference"] = compare(ours, reference(path))["identical"]
            reference.fix_sign = False
        rows.append(row)
        print(f"{row['frame']}: ours {row['n_ours']} ref {row['n_ref']} identical {row['identical']} "
              f"sign-sensitive cuts {row['sign_sensitive_cuts']}"
              + (f" (sign fixed: identical {row['identical_to_sign_fixed_reference']})" if not row["identical"] else "")
              + f"  {t1 - t0:.2f} s vs {t2 - t1:.2f} s", flush=True)
    ious = [v for r in rows for v in r["best_iou"]]
    summary = {
        "frames": len(rows),
        "identical_frames": sum(r["identical"] for r in rows),
        "identical_after_sign_fix": sum(r["identical"] or r.get("identical_to_sign_fixed_reference", False) for r in rows),
        "frames_with_sign_sensitive_cuts": sum(r["sign_sensitive_cuts"] > 0 for r in rows),
        "sign_sensitive_cuts": sum(r["sign_sensitive_cuts"] for r in rows),
        "masks_ours": sum(r["n_ours"] for r in rows), "masks_ref": sum(r["n_ref"] for r in rows),
        "mean_matched_iou": round(float(np.mean(ious)), 4) if ious else None,
        "min_matched_iou": round(float(np.min(ious)), 4) if ious else None,
        "s_per_frame_ours": round(t_ours / len(rows), 3), "s_per_frame_ref": round(t_ref / len(rows), 3),
        "speed_ratio": round(t_ref / t_ours, 2),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                         "frames": rows}, indent=1))


if __name__ == "__main__":
    main()
