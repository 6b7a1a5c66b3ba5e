"""``uvis pseudo-label --name``: stage 1a then 1b in one command, with a tiny random DINO and CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_clip import patch_clip_load
from uvis.cli.main import main
from uvis.data.synthetic import SYNTHETIC_CLASSES, make_dataset
from uvis.features import backbones
from uvis.pseudo import maskcut as mc
from uvis.pseudo import name_labels
from uvis.pseudo.format import load_pseudo_labels
from uvis.pseudo.name_labels import load_embeddings


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), path)
    patch_clip_load(monkeypatch, tmp_path)
    return path


@pytest.fixture
def dataset(tmp_path):
    make_dataset(tmp_path / "synth", num_videos=2, num_frames=3, height=24, width=40, seed=1)
    return tmp_path / "synth"


def _args(data, out, weights, *extra):
    return ["pseudo-label", str(data), "--out", str(out), "--dino", "tiny", "--dino-weights", str(weights),
            "--resolution", "32", "--num-masks", "2", "--device", "cpu", "--no-progress", "--name",
            "--templates", "single", *map(str, extra)]


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_pseudo_label_then_name_and_resume(tmp_path, tiny_weights, dataset, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(_args(dataset, out, tiny_weights)) == 0
    merged = load_pseudo_labels(out / "pseudo_labels.json")
    named = load_pseudo_labels(out / "pseudo_labels_named.json")
    assert [c.name for c in named.categories] == list(SYNTHETIC_CLASSES)
    assert not merged.categories and named.stats["naming"]["masks_in"] == len(merged.instances) > 0
    ids = {c.id for c in named.categories}
    assert all(i.category_id in ids and 0 < i.class_prob <= 1 for i in named.instances)
    emb = load_embeddings(out / "pseudo_labels_named.embeddings.npz")
    assert sorted(emb) == [i.id for i in named.instances]
    assert len(list((out / "pseudo_labels_named.parts").glob("video-*.npy"))) == 2
    assert "masks kept" in capsys.readouterr().out
    # a rerun neither cuts nor encodes again (finished videos and cached CLIP parts) and writes the same file
    first = (out / "pseudo_labels_named.json").read_text()
    cuts = _counting(monkeypatch, mc.MaskCut, "__call__")
    encodes = _counting(monkeypatch, name_labels, "embed_masks")
    assert main(_args(dataset, out, tiny_weights)) == 0
    assert not cuts and not encodes
    assert (out / "pseudo_labels_named.json").read_text() == first
    # other naming settings re-name from the cached embeddings
    assert main(_args(dataset, out, tiny_weights, "--no-prototypes")) == 0
    assert not encodes
    assert load_pseudo_labels(out / "pseudo_labels_named.json").stats["naming"]["removed"] == 0


def test_shards_name_only_once_merged(tmp_path, tiny_weights, dataset, capsys):
    out = tmp_path / "out"
    assert main(_args(dataset, out, tiny_weights, "--shard", "0/2")) == 0
    assert "written and named once every shard has finished" in capsys.readouterr().out
    assert not (out / "pseudo_labels.json").exists() and not (out / "pseudo_labels_named.json").exists()
    assert main(_args(dataset, out, tiny_weights, "--shard", "1/2")) == 0
    assert load_pseudo_labels(out / "pseudo_labels_named.json").categories


def test_vocabulary_from_classes_or_a_clear_error(tmp_path, tiny_weights, capsys):
    make_dataset(tmp_path / "one", num_videos=1, num_frames=2, height=24, width=32, seed=4)
    folder = tmp_path / "one" / "JPEGImages" / "synth_0000"  # a plain frame folder: no dataset, no categories
    out = tmp_path / "out"
    assert main(_args(folder, out, tiny_weights)) == 2  # a frame folder has no categories
    err = capsys.readouterr().err
    assert "no vocabulary" in err and "--classes" in err
    assert not (out / "videos").exists(), "the vocabulary is checked before the MaskCut pass"
    assert main(_args(folder, out, tiny_weights, "--classes", "cat,dog")) == 0
    named = load_pseudo_labels(out / "pseudo_labels_named.json")
    assert [(c.id, c.name) for c in named.categories] == [(1, "cat"), (2, "dog")]
    assert np.isin([i.category_id for i in named.instances], [1, 2]).all()
