"""Tracker quality with a real (tiny) trained model: train the `tiny` preset on synthetic videos, then
compare video AP (YouTube-VIS rules, class-agnostic) of

- "query index": query q in every frame = one track (what a per-clip model gives for free),
- the tracker with the EMA memory bank (uvis segment's default),
- the tracker without memory / re-identification (MinVIS baseline, --no-track-memory),

at several tracker score thresholds (AP rewards keeping weak tracks: they can only add recall). Evaluated on the training videos and on held-out videos of the same
generator. CPU is fine (a few minutes).

    OMP_NUM_THREADS=2 python benchmarks/segment_tiny_model_ap.py --steps 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from uvis.data import ytvis
from uvis.data.sources import discover
from uvis.data.synthetic import make_dataset
from uvis.evaluation import evaluate
from uvis.predict.trained import TrainedPredictor
from uvis.track.segmenter import Segmenter
from uvis.track.tracker import TrackerConfig
from uvis.track.video_tracks import tracks_by_query_index
from uvis.train import TrainConfig, pseudo_labels_from_dataset, train


def query_index_tracks(predictor: TrainedPredictor, root: Path) -> list[ytvis.Track]:
    return [t for item in discover(root).items
            for t in tracks_by_query_index(predictor.predict(item.open().read_all()), item.video_id)]


def tracked(predictor: TrainedPredictor, root: Path, cfg: TrackerConfig) -> list[ytvis.Track]:
    seg = Segmenter(predictor, tracker_config=cfg, top_k=10)
    return [t for it in discover(root).items for t in seg.segment(it.open(), progress=False).to_ytvis(it.video_id)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--json")
    args = ap.parse_args()
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_ds = make_dataset(tmp / "data", num_videos=2, num_frames=args.frames, height=64, width=96,
                                num_objects=3, seed=0)
        test_ds = make_dataset(tmp / "heldout", num_videos=3, num_frames=args.frames, height=64, width=96,
                               num_objects=3, seed=100)
        pseudo_labels_from_dataset(train_ds).save(tmp / "pseudo.json")
        cfg = TrainConfig.preset_config("tiny", data=str(tmp / "data"), pseudo=str(tmp / "pseudo.json"),
                                        out=str(tmp / "run"), device="cpu", steps=args.steps)
        predictor = TrainedPredictor.from_run(train(cfg, progress=False), device="cpu")
        for split, ds, root in (("train", train_ds, tmp / "data"), ("heldout", test_ds, tmp / "heldout")):
            row = {"query index": query_index_tracks(predictor, root)}
            for name, tcfg in {
                "ema (defaults: score 0.5, continue 0.2)": TrackerConfig(),
                "ema, score 0.5, no continue stage": TrackerConfig(continue_threshold=None),
                "ema, score 0.1, continue 0.02": TrackerConfig(score_threshold=0.1, continue_threshold=0.02),
                "ema, score 0 (every query)": TrackerConfig(score_threshold=0.0, continue_threshold=0.0),
                "no-memory, score 0.5, continue 0.2": TrackerConfig.minvis_baseline(),
                "no-memory, score 0": TrackerConfig.minvis_baseline(score_threshold=0.0, continue_threshold=0.0),
            }.items():
                row[name] = tracked(predictor, root, tcfg)
            out[split] = {k: round(evaluate(ds, v, class_agnostic=True).stats["AP"], 3) for k, v in row.items()}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
