import numpy as np
import pytest

from uvis.errors import UserError
from uvis.pseudo.prototypes import PrototypeConfig, PrototypeMemory, apply_memory

D = 8


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def cluster(rng, axis, n, spread=0.05):
    base = np.zeros(D, np.float32)
    base[axis] = 1
    return np.stack([unit(base + spread * rng.standard_normal(D)) for _ in range(n)])


def one_hot_probs(labels, num_classes, p=0.9):
    probs = np.full((len(labels), num_classes), (1 - p) / (num_classes - 1), np.float32)
    probs[np.arange(len(labels)), labels] = p
    return probs


def make_collection(seed=0):
    """Class 0 around axis 0, class 1 around axis 1; one outlier named 0, one class-1 object named 0."""
    rng = np.random.default_rng(seed)
    emb = np.concatenate([cluster(rng, 0, 10), cluster(rng, 1, 10)])
    labels = np.array([0] * 10 + [1] * 10)
    outlier = unit(np.eye(D)[5] + 0.01)  # far from both prototypes
    mislabelled = cluster(rng, 1, 1)[0]  # looks like class 1, named class 0 by CLIP
    emb = np.concatenate([emb, [outlier, mislabelled]])
    labels = np.concatenate([labels, [0, 0]])
    probs = one_hot_probs(labels, 3)
    probs[20] = [0.4, 0.3, 0.3]  # below min_prob: does not join the memory
    probs[21] = [0.45, 0.35, 0.2]
    return labels, probs, emb


def test_outlier_removed_and_mislabelled_relabelled():
    labels, probs, emb = make_collection()
    res = apply_memory(labels, probs, emb, PrototypeConfig(reject_threshold=0.5, relabel_margin=0.1))
    assert not res.keep[20]  # planted outlier
    assert res.keep[21] and res.labels[21] == 1  # relabelled to the class it looks like
    assert res.probs[21] == pytest.approx(0.35)  # CLIP's probability for the new class
    assert res.keep[:20].all() and (res.labels[:20] == labels[:20]).all()
    assert res.counts[0] == {"named": 12, "kept": 10, "removed": 1, "relabelled": 1, "relabelled_in": 0}
    assert res.counts[1] == {"named": 10, "kept": 11, "removed": 0, "relabelled": 0, "relabelled_in": 1}
    assert res.counts[2]["named"] == 0
    assert np.isnan(res.similarity).sum() == 0
    assert res.similarity[21] > 0.9


def test_class_without_prototype_keeps_clip_label():
    labels, probs, emb = make_collection()
    labels = labels.copy()
    labels[20] = 2  # the outlier is the only mask of class 2: no prototype
    probs = probs.copy()
    probs[20] = [0.1, 0.1, 0.8]
    res = apply_memory(labels, probs, emb, PrototypeConfig(min_members=3))
    assert res.keep[20] and res.labels[20] == 2 and np.isnan(res.similarity[20])


def test_disabled_changes_nothing():
    labels, probs, emb = make_collection()
    res = apply_memory(labels, probs, emb, PrototypeConfig(enabled=False))
    assert res.keep.all()
    assert (res.labels == labels).all()
    assert np.allclose(res.probs, probs[np.arange(len(labels)), labels])
    assert np.isnan(res.similarity).all()
    assert sum(c["removed"] + c["relabelled"] for c in res.counts.values()) == 0
    assert all(s == 0 for s in res.memory_sizes.values())


def built_memory(cfg):
    rng = np.random.default_rng(1)
    mem = PrototypeMemory(2, D, cfg)
    for e in cluster(rng, 0, 5):
        mem.add(0, e, 0.9)
    for e in cluster(rng, 1, 5):
        mem.add(1, e, 0.9)
    return mem


def test_reject_threshold_exact_boundary():
    probe = unit(np.eye(D)[0] + 0.8 * np.eye(D)[2])
    probs = np.array([0.9, 0.1], np.float32)
    sim = float(built_memory(PrototypeConfig()).similarities(probe)[0])
    at = built_memory(PrototypeConfig(reject_threshold=sim, relabel_margin=1.0))
    assert at.decide(0, probe, probs).action == "kept"  # equal to the threshold: kept
    above = built_memory(PrototypeConfig(reject_threshold=float(np.nextafter(sim, 2.0)), relabel_margin=1.0))
    d = above.decide(0, probe, probs)
    assert d.action == "removed" and d.similarity == pytest.approx(sim)


def test_relabel_margin_exact_boundary():
    probe = unit(0.7 * np.eye(D)[0] + np.eye(D)[1])  # closer to class 1, named class 0
    probs = np.array([0.6, 0.4], np.float32)
    sims = built_memory(PrototypeConfig()).similarities(probe)
    gap = float(sims[1]) - float(sims[0])
    assert gap > 0
    at = built_memory(PrototypeConfig(reject_threshold=-1.0, relabel_margin=gap))
    assert at.decide(0, probe, probs).action == "kept"  # closer by exactly the margin: not relabelled
    below = built_memory(PrototypeConfig(reject_threshold=-1.0, relabel_margin=float(np.nextafter(gap, -1.0))))
    d = below.decide(0, probe, probs)
    assert (d.action, d.label) == ("relabelled", 1)
    assert d.prob == pytest.approx(0.4)


def test_min_prob_boundary_and_bounded_memory_keeps_most_confident():
    cfg = PrototypeConfig(min_prob=0.5, max_per_class=16, min_members=1)
    mem = PrototypeMemory(1, D, cfg)
    assert mem.add(0, unit(np.ones(D)), 0.5)  # exactly min_prob joins
    assert not mem.add(0, unit(np.ones(D)), float(np.nextafter(0.5, 0.0)))
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.5, 1.0, 5000)
    for p in probs:
        mem.add(0, unit(rng.standard_normal(D)), float(p))
    assert mem.size(0) == 16
    kept = sorted(p for p, _, _ in mem._heaps[0])
    assert kept == pytest.approx(sorted(probs)[-16:])
    protos, has = mem.prototypes()
    assert has[0] and np.linalg.norm(protos[0]) == pytest.approx(1.0, abs=1e-5)


def test_online_differs_from_two_pass_when_outlier_comes_first():
    labels, probs, emb = make_collection()
    order = [20] + [i for i in range(len(labels)) if i != 20]  # the outlier arrives before any prototype
    frames = [[i] for i in order]
    probs = probs.copy()
    probs[20] = [0.4, 0.3, 0.3]
    two = apply_memory(labels, probs, emb, PrototypeConfig(mode="two-pass"), frames=frames)
    online = apply_memory(labels, probs, emb, PrototypeConfig(mode="online"), frames=frames)
    assert not two.keep[20]
    assert online.keep[20] and np.isnan(online.similarity[20])  # nothing to compare with yet
    # Both agree on the late, mislabelled mask once prototypes exist.
    assert online.labels[21] == two.labels[21] == 1
    # Online memory only ever holds kept, confident masks.
    assert online.memory_sizes[0] == 10 and online.memory_sizes[1] == 10


def test_online_frame_is_judged_against_earlier_frames_only():
    rng = np.random.default_rng(3)
    emb = cluster(rng, 0, 6)
    labels = np.zeros(6, int)
    probs = one_hot_probs(labels, 2)
    cfg = PrototypeConfig(mode="online", min_members=3)
    res = apply_memory(labels, probs, emb, cfg, frames=[[0, 1, 2], [3, 4, 5]])
    assert np.isnan(res.similarity[:3]).all()  # first frame: memory empty
    assert not np.isnan(res.similarity[3:]).any()
    with pytest.raises(ValueError):
        apply_memory(labels, probs, emb, cfg, frames=[[0, 1], [3, 4, 5]])


def test_config_validation():
    with pytest.raises(UserError):
        PrototypeConfig(mode="sideways")
    with pytest.raises(UserError):
        PrototypeConfig(min_members=10, max_per_class=5)
