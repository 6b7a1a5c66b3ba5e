"""The training-free frame predictor (``uvis segment --model none``): stage-1 masks, named by CLIP.

Per frame, ``features`` picks the proposals: MaskCut on DINO keys (``"dino"``, up to ``num_masks``
class-agnostic masks, score ``1 - Ncut/2``) or MotionCut on residual motion (``"motion"``, no weights; see
``uvis.pseudo.motioncut``). With CLIP, each mask crop is embedded by CLIP's image encoder: the embedding is both
the tracking embedding (appearance) and, against the prompt-ensembled CLIP text embeddings of the vocabulary,
the class probabilities (softmax of ``logit_scale`` x cosine) — so any vocabulary works, which makes this path
open-vocabulary by construction (``with_vocabulary``). Without CLIP (``clip=None``, the weights-free mode) every
mask is an ``object`` and its tracking embedding is its colour histogram (``uvis.features.colour``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.data.vocabulary import Vocabulary, clean_names
from uvis.errors import UserError
from uvis.features.colour import colour_embeddings
from uvis.predict.base import Predictor
from uvis.predict.types import FrameDetections
from uvis.pseudo.clip_model import ClipConfig, ClipModel
from uvis.pseudo.maskcut import FusedMaskCut, MaskCut, MaskCutConfig
from uvis.pseudo.motioncut import MotionCut, MotionCutConfig
from uvis.pseudo.naming import NamingConfig, classify, embed_masks
from uvis.pseudo.vocabulary import TEMPLATE_SETS, class_embeddings


@dataclass
class Stage1Config:
    """Models and settings of the training-free path (defaults: those of ``uvis pseudo-label`` / ``uvis name``)."""

    features: str = "dino"  # "dino" (MaskCut on DINO keys), "motion" (MotionCut, no weights) or "dino+motion"
    backbone: str = "dino_vitb8"  # DINO ViT for MaskCut
    dino_weights: str | Path | None = None  # checkpoint file or folder (None: the usual weights lookup)
    maskcut: MaskCutConfig = field(default_factory=MaskCutConfig)
    motion: MotionCutConfig = field(default_factory=MotionCutConfig)
    motion_weight: float = 0.5  # dino+motion: the motion graph's share of the fused graph
    clip: ClipConfig | None = field(default_factory=ClipConfig)  # None: no naming, colour-histogram tracking
    naming: NamingConfig = field(default_factory=NamingConfig)


OBJECT = Vocabulary.from_names(["object"])  # the one class of the weights-free mode


class Stage1Predictor(Predictor):
    """Stage-1 masks (MaskCut or MotionCut) + CLIP (or colour) behind the ``Predictor`` interface (``temporal``
    with MotionCut, which needs the frame after each batch).

    ``fingerprint``: the weights files used, e.g. ``{"dino": {"file", "sha256"}, "clip": {...}}`` (``uvis segment``
    records it per video; ``build_predictor`` passes it)."""

    def __init__(self, proposals: MaskCut | MotionCut, clip: ClipModel | None, vocabulary: Vocabulary,
                 naming: NamingConfig | None = None, *, fingerprint: dict[str, Any] | None = None):
        self.proposals = proposals
        self.clip = clip
        self.temporal = proposals.temporal
        self.naming = naming or NamingConfig()
        self._templates = TEMPLATE_SETS[self.naming.templates]
        self._fingerprint = dict(fingerprint or {})
        self._set(vocabulary if clip is not None else OBJECT)

    @classmethod
    def create(cls, vocabulary: Vocabulary, config: Stage1Config | None = None, device: str | None = None, *,
               fingerprint: dict[str, Any] | None = None) -> Stage1Predictor:
        cfg = config or Stage1Config()
        proposals: MaskCut | MotionCut
        if cfg.features == "motion":
            proposals = MotionCut(cfg.motion)
        elif cfg.features in ("dino", "dino+motion"):
            from uvis.features.dino import DinoFeatures

            dino = DinoFeatures(cfg.backbone, cfg.dino_weights, device)
            proposals = MaskCut(dino, cfg.maskcut) if cfg.features == "dino" else FusedMaskCut(
                dino, cfg.maskcut, motion=cfg.motion.motion, motion_weight=cfg.motion_weight, sigma=cfg.motion.sigma)
        else:
            raise UserError(f"unknown stage-1 features '{cfg.features}'", fix="use dino, motion or dino+motion")
        clip = None
        if cfg.clip is not None:
            clip = ClipModel.load(cfg.clip if device is None else replace(cfg.clip, device=device))
        return cls(proposals, clip, vocabulary, cfg.naming, fingerprint=fingerprint)

    def _set(self, vocabulary: Vocabulary) -> None:
        self._vocabulary = vocabulary
        self.class_embeddings = None if self.clip is None else \
            class_embeddings(self.clip, vocabulary, self._templates, cache_dir=self.naming.text_cache_dir)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def with_vocabulary(self, names: Sequence[str]) -> Stage1Predictor:
        """A predictor (same models) naming objects with these classes (ids 1..N in order); needs CLIP."""
        return self.with_classes(Vocabulary.from_names(clean_names(names)))

    def with_classes(self, vocabulary: Vocabulary) -> Stage1Predictor:
        """``with_vocabulary`` keeping the ids of ``vocabulary`` (e.g. a dataset's categories)."""
        if self.clip is None:
            raise UserError("class names need CLIP, and this predictor runs without it (weights-free mode)",
                            fix="drop the class names, or give the CLIP weights")
        new = copy.copy(self)
        new._set(vocabulary)
        return new

    def start_video(self) -> None:
        """A new video begins (MotionCut and FusedMaskCut forget the previous frame)."""
        if self.proposals.temporal:
            self.proposals.start_video()  # type: ignore[union-attr]

    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None) -> list[FrameDetections]:
        if isinstance(self.proposals, MotionCut):
            pairs = self.proposals.masks(frames, next_frame)
            masks = [[m for m, _ in fm] for fm in pairs]
            scores = [[s for _, s in fm] for fm in pairs]
        else:
            per_frame = self.proposals(frames, next_frame) if self.temporal else self.proposals(frames)  # type: ignore[call-arg]
            masks = [[mask_utils.decode(fm.rle).astype(bool) for fm in fms] for fms in per_frame]
            scores = [[fm.score for fm in fms] for fms in per_frame]
        if self.clip is not None:
            chunks = list(embed_masks(self.clip, zip(frames, masks, strict=True), self.naming))
            emb = torch.cat(chunks) if chunks else torch.zeros(0, self.clip.embed_dim)
            probs = classify(emb, self.class_embeddings, self.clip.logit_scale) if len(emb) else \
                torch.zeros(0, len(self._vocabulary))
        else:
            emb = torch.cat([colour_embeddings(f, ms) for f, ms in zip(frames, masks, strict=True)])
            probs = torch.ones(len(emb), 1)
        h, w = frames.shape[1:3]
        out: list[FrameDetections] = []
        start = 0
        for ss, ms in zip(scores, masks, strict=True):
            n = len(ms)
            out.append(FrameDetections(
                embeddings=emb[start:start + n],
                class_probs=probs[start:start + n],
                scores=torch.tensor(ss, dtype=torch.float32),
                masks=torch.from_numpy(np.stack(ms)) if n else torch.zeros(0, h, w, dtype=torch.bool),
            ))
            start += n
        return out
