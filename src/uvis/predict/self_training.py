"""Self-training: a trained model's confident per-frame predictions become the next round's pseudo-labels.

Per frame, of the model's Q query predictions (``uvis.predict.trained.TrainedPredictor``) we keep those

- whose score (the probability of the most likely real class) is >= ``min_score`` (default 0.5),
- whose mask is non-empty,
- that are not duplicates: several queries often fire on one object, so going from the highest score down,
  a mask whose IoU with an already kept mask is > ``max_overlap`` (default 0.8) is dropped (mask NMS).

A kept mask carries the model's class: ``category_id`` is the run's vocabulary id of the most likely class,
``class_prob`` its probability and ``score`` the model's score (the same number). The file's categories are
the run's vocabulary, so ``uvis train`` trains the next round class-aware over the same classes (a
class-agnostic run's vocabulary is the single class "object"). Kept masks may overlap a little (IoU <= 0.8);
unlike MaskCut's, they are not made disjoint.

Output layout, parts, resume and shards are those of MaskCut pseudo-labelling (``uvis.pseudo.collection``);
the folder's ``config.json`` records the run folder and a digest of its weights (``weights_sha256``: the first 16
hex digits of the file's sha256, the format such folders have always recorded), so pseudo-labels of another
model are never mixed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.data.sources import Collection
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.predict.trained import TrainedPredictor
from uvis.predict.types import FrameDetections
from uvis.pseudo.collection import LabellingJob, label_collection
from uvis.pseudo.maskcut import FrameMask


@dataclass(frozen=True)
class SelfTrainingConfig:
    """Which predictions become pseudo-labels (see the module docstring)."""

    min_score: float = 0.5  # keep predictions at least this confident
    max_overlap: float = 0.8  # drop a mask overlapping a higher-scoring kept one by more than this IoU

    def check(self) -> None:
        for name in ("min_score", "max_overlap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{name}={value} is outside [0, 1]", fix=f"pass a {name}= between 0 and 1", param=name)


def select_predictions(dets: FrameDetections, vocabulary_ids: list[int], config: SelfTrainingConfig
                       ) -> list[FrameMask]:
    """The confident, non-empty, non-duplicate predictions of one frame, highest score first."""
    masks = dets.masks.bool()
    flat = masks.flatten(1)
    area = flat.sum(1)
    scores = dets.scores.float()
    candidates = torch.nonzero((scores >= config.min_score) & (area > 0)).flatten()
    candidates = candidates[torch.argsort(scores[candidates], descending=True, stable=True)]
    if len(candidates) == 0:
        return []
    m = flat[candidates].float()
    inter = m @ m.T
    union = area[candidates, None] + area[None, candidates] - inter
    iou = inter / union.clamp(min=1)
    kept: list[int] = []
    for i in range(len(candidates)):
        if all(iou[i, j] <= config.max_overlap for j in kept):
            kept.append(i)
    chosen = candidates[kept]
    rles = mask_utils.encode_many(masks[chosen].numpy())
    classes = dets.class_probs[chosen].float().argmax(-1)
    out = []
    for rle, q, c in zip(rles, chosen.tolist(), classes.tolist(), strict=True):
        score = float(scores[q])
        out.append(FrameMask(rle, score, category_id=vocabulary_ids[c], class_prob=float(dets.class_probs[q, c])))
    return out


def model_job(run_dir: str | Path, config: SelfTrainingConfig | None = None, device: str | None = None
              ) -> LabellingJob:
    """A ``LabellingJob`` labelling frames with the trained model of ``run_dir``."""
    config = config or SelfTrainingConfig()
    config.check()
    run = Path(run_dir).resolve()
    predictor = TrainedPredictor.from_run(run, device)  # checks the folder; cheap next to labelling a collection
    weights = predictor.fingerprint()  # the file from_run loaded: {"file", "sha256"}
    ids = [i for i, _ in predictor.vocabulary]

    def label(frames: np.ndarray) -> list[list[FrameMask]]:
        return [select_predictions(d, ids, config) for d in predictor.predict(frames)]

    settings: dict[str, Any] = {"stage": "self-training", "model": str(run), "weights": weights["file"],
                                "weights_sha256": weights["sha256"][:16], **asdict(config)}
    return LabellingJob(stage="self-training", description=f"uvis pseudo-labels (predictions of the model in {run})",
                        settings=settings, make_labeller=lambda: label,
                        categories=predictor.vocabulary.categories())


def self_train_collection(
    collection: Collection,
    out_dir: str | Path,
    run_dir: str | Path,
    config: SelfTrainingConfig | None = None,
    *,
    device: str | None = None,
    batch_size: int = 8,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    skip_bad: bool = False,
    group: Group | None = None,
) -> Path:
    """Pseudo-labels for every video of ``collection`` from the model in ``run_dir`` (see the module docstring).

    Returns the path of the merged ``pseudo_labels.json`` (it exists once every video has its part).
    """
    dev = group.device(device) if group is not None else device
    return label_collection(collection, out_dir, model_job(run_dir, config, dev), batch_size=batch_size,
                            shard=shard, overwrite=overwrite, progress=progress, skip_bad=skip_bad, group=group)
