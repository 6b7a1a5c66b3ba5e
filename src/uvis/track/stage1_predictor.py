"""The training-free frame predictor (``uvis segment --model none``): MaskCut masks named by CLIP.

Per frame: MaskCut on DINO keys proposes up to ``num_masks`` class-agnostic masks (score
``1 - Ncut/2``); each mask crop is embedded by CLIP's image encoder. The CLIP image embedding is
both the tracking embedding (appearance) and, against the prompt-ensembled CLIP text embeddings of
the vocabulary, the class probabilities (softmax of ``logit_scale`` x cosine) — so any vocabulary
works, which makes this path open-vocabulary by construction (``set_vocabulary``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from uvis.data import masks as mask_utils
from uvis.features.dino import DinoFeatures
from uvis.pseudo.clip_model import ClipConfig, ClipModel
from uvis.pseudo.maskcut import MaskCut, MaskCutConfig
from uvis.pseudo.naming import NamingConfig, classify, embed_masks
from uvis.pseudo.vocabulary import TEMPLATE_SETS, Vocabulary, class_embeddings
from uvis.track.types import FrameDetections


@dataclass
class Stage1Config:
    """Models and settings of the training-free path (defaults: those of ``uvis pseudo-label`` / ``uvis name``)."""

    backbone: str = "dino_vitb8"  # DINO ViT for MaskCut
    dino_weights: str | Path | None = None  # checkpoint file or folder (None: the usual weights lookup)
    maskcut: MaskCutConfig = field(default_factory=MaskCutConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    naming: NamingConfig = field(default_factory=NamingConfig)


def load_clip(cfg: ClipConfig) -> ClipModel:
    """CLIP for the stage-1 predictor (a function, so tests can substitute a tiny model)."""
    return ClipModel.load(cfg)


class Stage1FramePredictor:
    """MaskCut + CLIP behind the ``FramePredictor`` interface (``predict``, ``vocabulary``)."""

    def __init__(self, maskcut: MaskCut, clip: ClipModel, vocabulary: Vocabulary,
                 naming: NamingConfig | None = None):
        self.maskcut = maskcut
        self.clip = clip
        self.naming = naming or NamingConfig()
        self._templates = TEMPLATE_SETS[self.naming.templates]
        # {"dino": {"file", "sha256"}, "clip": {...}} when known: `uvis segment` records it per video
        self.weights_id: dict[str, dict[str, str]] | None = None
        self._set(vocabulary)

    @classmethod
    def create(cls, vocabulary: Vocabulary, config: Stage1Config | None = None,
               device: str | None = None) -> Stage1FramePredictor:
        cfg = config or Stage1Config()
        features = DinoFeatures(cfg.backbone, cfg.dino_weights, device)
        clip_cfg = cfg.clip if device is None else replace(cfg.clip, device=device)
        return cls(MaskCut(features, cfg.maskcut), load_clip(clip_cfg), vocabulary, cfg.naming)

    def _set(self, vocabulary: Vocabulary) -> None:
        self.vocab = vocabulary
        self.vocabulary = list(zip(vocabulary.ids, vocabulary.names, strict=True))
        self.class_embeddings = class_embeddings(self.clip, vocabulary, self._templates,
                                                 cache_dir=self.naming.text_cache_dir)

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Name objects with these classes instead (ids 1..N in order)."""
        self._set(Vocabulary.from_names(list(names)))

    def predict(self, frames: np.ndarray) -> list[FrameDetections]:
        per_frame = self.maskcut(frames)
        masks = [[mask_utils.decode(fm.rle) for fm in fms] for fms in per_frame]
        chunks = list(embed_masks(self.clip, zip(frames, masks, strict=True), self.naming))
        emb = torch.cat(chunks) if chunks else torch.zeros(0, self.clip.embed_dim)
        probs = classify(emb, self.class_embeddings, self.clip.logit_scale) if len(emb) else \
            torch.zeros(0, len(self.vocabulary))
        h, w = frames.shape[1:3]
        out: list[FrameDetections] = []
        start = 0
        for fms, ms in zip(per_frame, masks, strict=True):
            n = len(ms)
            out.append(FrameDetections(
                embeddings=emb[start:start + n],
                class_probs=probs[start:start + n],
                scores=torch.tensor([fm.score for fm in fms], dtype=torch.float32),
                masks=torch.from_numpy(np.stack(ms)) if n else torch.zeros(0, h, w, dtype=torch.bool),
            ))
            start += n
        return out
