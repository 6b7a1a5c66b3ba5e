"""CLIP caches (class text embeddings, per-video crop embeddings) are never shared between different CLIPs."""

import numpy as np
import torch

from test_clip_naming import make_pseudo
from tiny_clip import TINY_CFG, save_tiny_clip
from uvis.data.sources import discover
from uvis.data.vocabulary import Vocabulary
from uvis.pseudo.clip_model import ClipConfig, ClipModel, random_clip
from uvis.pseudo.name_labels import name_and_embed
from uvis.pseudo.naming import NamingConfig
from uvis.pseudo.prototypes import PrototypeConfig
from uvis.pseudo.vocabulary import SHORT_TEMPLATES, class_embeddings


def _load(path, *, quick_gelu):
    return ClipModel.load(ClipConfig(model_name="tiny", model_cfg=TINY_CFG, weights=path, device="cpu",
                                     quick_gelu=quick_gelu))


def test_text_cache_not_shared_between_gelu_variants_of_one_weights_file(tmp_path):
    weights = save_tiny_clip(tmp_path)
    voc = Vocabulary.from_names(["red thing", "green thing"])
    cache = tmp_path / "cache"
    class_embeddings(_load(weights, quick_gelu=True), voc, SHORT_TEMPLATES, cache_dir=cache)
    gelu = class_embeddings(_load(weights, quick_gelu=False), voc, SHORT_TEMPLATES, cache_dir=cache)
    fresh = class_embeddings(_load(weights, quick_gelu=False), voc, SHORT_TEMPLATES)  # no disk cache
    assert torch.allclose(gelu, fresh, atol=1e-6)
    assert len(list(cache.glob("text-*.pt"))) == 2


def test_text_cache_not_shared_between_random_models(tmp_path):
    voc = Vocabulary.from_names(["a", "b"])
    cfg = ClipConfig(model_name="tiny", model_cfg=TINY_CFG, device="cpu")
    class_embeddings(random_clip(cfg, seed=0), voc, ("a photo of a {}.",), cache_dir=tmp_path)
    other = random_clip(cfg, seed=1)
    got = class_embeddings(other, voc, ("a photo of a {}.",), cache_dir=tmp_path)
    assert torch.allclose(got, other.encode_text(["a photo of a a.", "a photo of a b."]), atol=1e-5)


def test_crop_cache_not_shared_between_gelu_variants_or_normalisations(tmp_path):
    pseudo = make_pseudo(tmp_path / "data")
    source = discover(tmp_path / "data")
    weights = save_tiny_clip(tmp_path)
    voc = Vocabulary.from_names(["red thing", "green thing"])
    cfg = NamingConfig(templates="single", background="grey")
    off = PrototypeConfig(enabled=False)
    parts = tmp_path / "parts"
    name_and_embed(pseudo, source, _load(weights, quick_gelu=True), voc, cfg, off, parts_dir=parts)
    gelu = name_and_embed(pseudo, source, _load(weights, quick_gelu=False), voc, cfg, off, parts_dir=parts)
    fresh = name_and_embed(pseudo, source, _load(weights, quick_gelu=False), voc, cfg, off)
    assert np.allclose(gelu.embeddings, fresh.embeddings, atol=1e-6)
    other_norm = _load(weights, quick_gelu=False)
    other_norm.mean = (0.5, 0.5, 0.5)
    other_norm.std = (0.25, 0.25, 0.25)
    renormed = name_and_embed(pseudo, source, other_norm, voc, cfg, off, parts_dir=parts)
    assert not np.allclose(renormed.embeddings, gelu.embeddings, atol=1e-3)
