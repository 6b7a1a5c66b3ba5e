"""``uvis demo``: the pipeline on a generated sample, with or without pretrained weights.

With the DINO and CLIP weights available (downloaded on first use, or in ``$UVIS_WEIGHTS_DIR``) the whole
unsupervised pipeline runs. Without them the demo says which files are missing and where they go, then runs
the whole pipeline weights-free: stage 1 from motion (``--features motion``), class-agnostic unless the CLIP
weights are there, then training, tracking, evaluation and the report. No ground truth enters stages 1-3.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_BACKBONE = "dino_vits16"  # the smallest DINO: the demo must stay quick on a CPU


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run uvis on a generated sample video and say where the output went",
        description="Generate a small synthetic sample with ground truth and run `uvis run` on it. With the DINO and "
        "CLIP weights (downloaded, or in $UVIS_WEIGHTS_DIR) the whole unsupervised pipeline runs, into OUT/run. "
        "Without them it names the missing files, then runs the pipeline weights-free, stage 1 from motion "
        "(--features motion), into OUT/run-motion. A rerun reuses what is finished.")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--steps", type=int, default=300, help="training steps of the demo model (default 300)")
    p.add_argument("--device", help="auto, cpu or cuda (default auto: cuda when available)")
    p.set_defaults(func=run)


def missing_weights() -> list[str]:
    """One line per pretrained file the full pipeline needs and cannot find or download."""
    from uvis.cli.flags import render_error
    from uvis.cli.run import run_options
    from uvis.errors import WeightsNotFoundError
    from uvis.features.backbones import VITS, clip_weights_spec
    from uvis.features.weights import resolve

    missing = []
    for spec, param in ((VITS[DEMO_BACKBONE].spec, "dino_weights"), (clip_weights_spec("ViT-B-32", "openai"), "clip_weights")):
        assert spec is not None
        try:
            resolve(spec, param=param)
        except WeightsNotFoundError as e:
            missing.append(render_error(e, run_options()))  # the flags of `uvis run`, which the demo runs
    return missing


def run(args: argparse.Namespace) -> int:
    from uvis.cli.run import check_device, command_line
    from uvis.data.synthetic import SYNTHETIC_CLASSES, make_dataset, write_video_file
    from uvis.pipeline import RunConfig, run_pipeline

    check_device(args.device)
    out = Path(args.out)
    sample = out / "sample"
    if not (sample / "annotations.json").is_file():
        make_dataset(sample, num_videos=3, num_frames=16, height=96, width=128, num_objects=3, seed=0)
        write_video_file(out / "sample.mp4", num_frames=16, height=96, width=128, num_objects=3, seed=0)
    print(f"sample: {sample} (3 synthetic videos with ground truth) and {out / 'sample.mp4'}")

    missing = missing_weights()
    # One run folder per mode, so the full pipeline can run once the weights are there, beside the earlier run.
    run_name = "run-motion" if missing else "run"
    config = RunConfig(data=str(sample), out=str(out / run_name), device=args.device, backbone=DEMO_BACKBONE,
                       classes=list(SYNTHETIC_CLASSES), train_preset="tiny", train_steps=args.steps,
                       ablations=["no-track-memory"], maskcut_batch_size=4)
    if missing:
        print("pretrained weights are missing, so stage 1 cannot use DINO + CLIP:")
        for line in missing:
            print(f"  - {line}")
        print("running weights-free instead: stage 1 from motion (--features motion); no ground truth in stages 1-3")
        config.features = "motion"
        config.num_masks = 3  # the sample has 3 objects a video
    config.command = command_line(config)  # the report shows the `uvis run` that does the same
    run_dir = run_pipeline(config)
    print(f"\noutput in {run_dir}:")
    print(f"  report          {run_dir / 'report.md'}")
    print(f"  tracks (JSON)   {run_dir / '4-segment' / 'results.json'}")
    print(f"  overlay videos  {run_dir / '4-segment' / 'overlays'}")
    print(f"  per-frame PNGs  {run_dir / '4-segment' / 'masks'}")
    print(f"  trained model   {run_dir} (use it on other videos: uvis segment VIDEO --model {run_dir} --out OUT)")
    return 0
