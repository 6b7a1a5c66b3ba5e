"""Which crop background names objects best? Top-1 accuracy of CLIP naming on ground-truth masks.

Takes a dataset with ground truth (YouTube-VIS JSON, or anything ``uvis.data.sources.discover`` reads
that carries categories), samples frames of every ground-truth track, names those masks with each
background mode (blur / grey / keep) over the dataset's vocabulary, and reports the accuracy of CLIP
alone and after the prototype memory (accuracy among kept masks, and the share removed).

Needs real CLIP weights to mean anything:

    PYTHONPATH=src python benchmarks/naming_backgrounds.py ytvis/train.json --frames ytvis/train/JPEGImages \\
        --clip-weights ViT-B-32.pt --max-tracks 2000 --device cuda

``--random-weights`` runs the same code with a random ViT-B-32 (a smoke test; accuracy is chance).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from uvis.data.sources import discover
from uvis.data.vocabulary import Vocabulary
from uvis.pseudo.clip_model import ClipConfig, ClipModel, random_clip
from uvis.pseudo.format import FrameInstance, PseudoLabels
from uvis.pseudo.name_labels import name_and_embed
from uvis.pseudo.naming import BACKGROUNDS, NamingConfig
from uvis.pseudo.prototypes import PrototypeConfig


def gt_instances(dataset, per_track: int, max_tracks: int | None, seed: int) -> tuple[PseudoLabels, list[int]]:
    rng = np.random.default_rng(seed)
    tracks = list(dataset.tracks)
    if max_tracks is not None and len(tracks) > max_tracks:
        tracks = [tracks[i] for i in sorted(rng.choice(len(tracks), max_tracks, replace=False))]
    instances, truth = [], []
    for t in tracks:
        present = [i for i, s in enumerate(t.segmentations) if s is not None]
        for i in sorted(rng.choice(present, min(per_track, len(present)), replace=False)) if present else []:
            instances.append(FrameInstance(t.video_id, int(i), t.segmentations[i], score=1.0))
            truth.append(t.category_id)
    return PseudoLabels(videos=list(dataset.videos), instances=instances), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--clip-model", default="ViT-B-32")
    ap.add_argument("--clip-weights", default=None)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--device", default=None)
    ap.add_argument("--per-track", type=int, default=1)
    ap.add_argument("--max-tracks", type=int, default=None)
    ap.add_argument("--templates", default="imagenet80")
    ap.add_argument("--context", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    collection = discover(args.data, frames=args.frames)
    if collection.dataset is None or not collection.dataset.tracks:
        raise SystemExit("the input has no ground truth")
    vocabulary = Vocabulary.from_categories(collection.dataset.categories)
    cfg = ClipConfig(model_name=args.clip_model, weights=args.clip_weights, device=args.device)
    clip = random_clip(cfg) if args.random_weights else ClipModel.load(cfg)
    pseudo, truth = gt_instances(collection.dataset, args.per_track, args.max_tracks, args.seed)
    truth_arr = np.array(truth)
    for background in BACKGROUNDS:
        naming = NamingConfig(background=background, context=args.context, templates=args.templates)
        row = {"background": background, "masks": len(truth), "classes": len(vocabulary),
               "weights": "random" if args.random_weights else str(clip.weights_path)}
        plain = name_and_embed(pseudo, collection, clip, vocabulary, naming, PrototypeConfig(enabled=False))
        pred = np.array([i.category_id for i in plain.labels.instances])
        row["top1_clip"] = round(float((pred == truth_arr).mean()), 4) if len(pred) else None
        memory = name_and_embed(pseudo, collection, clip, vocabulary, naming, PrototypeConfig())
        # Kept instances come back in input order, minus the removed ones: match them up by segmentation + frame.
        key = {(i.video_id, i.frame_index, i.segmentation["counts"]): k for k, i in enumerate(pseudo.instances)}
        kept = [(key[(i.video_id, i.frame_index, i.segmentation["counts"])], i.category_id)
                for i in memory.labels.instances]
        if kept:
            row["top1_memory_kept"] = round(float(np.mean([truth[k] == c for k, c in kept])), 4)
        row["removed_share"] = round(1 - len(kept) / max(len(truth), 1), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
