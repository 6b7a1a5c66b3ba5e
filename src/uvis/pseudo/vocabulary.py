"""Prompt-ensembled CLIP text embeddings of a class vocabulary (the type itself: ``uvis.data.vocabulary``).

Each class embedding is the L2-normalised mean of the L2-normalised text embeddings of the class
name put into every prompt template (the CLIP paper's prompt ensembling). They are computed once per
(CLIP identity -- architecture, activation, tag, weights file content, input size, normalisation --,
templates, classes) and cached in memory and, when a cache folder is given, on disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from uvis.data import atomic
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError
from uvis.pseudo.clip_model import ClipModel

# The 80 ImageNet prompt templates of the CLIP paper (Radford et al. 2021, prompt-engineering notebook).
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

# The 7-template subset the CLIP authors found nearly as good as all 80 (8x fewer text passes).
SHORT_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)

TEMPLATE_SETS = {"imagenet80": IMAGENET_TEMPLATES, "short7": SHORT_TEMPLATES, "single": ("a photo of a {}.",)}


def _cache_key(clip: ClipModel, vocabulary: Vocabulary, templates: tuple[str, ...]) -> str:
    payload = json.dumps({"clip": clip.identity(), "templates": list(templates),
                          "classes": list(vocabulary.prompt_names())}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def class_embeddings(
    clip: ClipModel,
    vocabulary: Vocabulary,
    templates: tuple[str, ...] = IMAGENET_TEMPLATES,
    *,
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """Vx D prompt-ensembled class embeddings (float32, unit rows), cached in memory and optionally on disk."""
    if not templates or any("{}" not in t for t in templates):
        raise UserError("every prompt template must contain '{}'", fix="write templates like 'a photo of a {}.'")
    key = _cache_key(clip, vocabulary, templates)
    cache = clip.text_cache
    if key in cache:
        return cache[key]
    disk = Path(cache_dir) / f"text-{key}.pt" if cache_dir is not None else None
    if disk is not None and disk.is_file():
        try:
            emb = torch.load(disk, map_location="cpu", weights_only=True)
            if emb.shape == (len(vocabulary), clip.embed_dim):
                cache[key] = emb
                return emb
        except Exception:  # a damaged cache file is recomputed below
            pass
    names = vocabulary.prompt_names()
    texts = [t.format(n) for n in names for t in templates]
    per_text = clip.encode_text(texts).view(len(names), len(templates), -1)
    emb = F.normalize(per_text.mean(dim=1), dim=-1)
    cache[key] = emb
    if disk is not None:
        atomic.write_with(disk, lambda tmp: torch.save(emb, tmp))
    return emb
