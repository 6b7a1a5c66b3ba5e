"""MaskCut on constructed patch features whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from uvis.data import masks as mask_utils
from uvis.errors import UserError
from uvis.pseudo import maskcut as mc
from uvis.pseudo.maskcut import MaskCutConfig, maskcut_patches


def blob_keys(labels: torch.Tensor, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """One key per patch: the one-hot of its label plus a little noise (same label: cosine ~1, else ~0)."""
    g = torch.Generator().manual_seed(seed)
    lab = labels.flatten()
    return (torch.nn.functional.one_hot(lab, dim).float() + 0.05 * torch.randn(lab.numel(), dim, generator=g))[None]


def run(labels: torch.Tensor, config: MaskCutConfig | None = None) -> mc.PatchMasks:
    return maskcut_patches(blob_keys(labels), tuple(labels.shape), config or MaskCutConfig())


def test_object_on_background():
    lab = torch.zeros(10, 12, dtype=torch.long)
    lab[2:6, 3:8] = 1
    out = run(lab)
    assert torch.equal(out.masks[0, 0], lab == 1)
    assert 0.5 < out.scores[0, 0] <= 1


def test_three_objects_in_three_cuts():
    lab = torch.zeros(12, 12, dtype=torch.long)
    lab[1:5, 1:6] = 1
    lab[6:11, 2:5] = 2
    lab[3:9, 7:11] = 3
    out = run(lab)
    found = {int(lab[m][0]) for m in out.masks[0] if m.any() and (lab[m] == lab[m][0]).all()}
    assert found == {1, 2, 3}
    for k in range(3):  # each cut is a whole object
        m = out.masks[0, k]
        assert torch.equal(m, lab == lab[m][0])


def test_corner_rule_flips_background_like_side():
    # a ring of background (smaller, so it holds the eigenvector's peak) around a big central object:
    # the seed rule alone would choose the ring, which covers all 4 corners, so it is flipped
    lab = torch.zeros(8, 8, dtype=torch.long)
    lab[1:7, 1:7] = 1
    out = run(lab)
    assert torch.equal(out.masks[0, 0], lab == 1)


def test_orient_rules_and_sign_invariance():
    grid = (4, 4)
    vec = torch.full((16,), -0.1)
    vec[[0, 3, 12, 5]] = 1.0  # high side covers 3 corners -> flipped; seed moves to the lowest entry
    vec[10] = -0.5
    fg, seed = mc.orient(vec[None], grid)
    assert not fg[0, [0, 3, 12]].any() and fg[0, 10] and int(seed) == 10
    fg2, seed2 = mc.orient(-vec[None], grid)
    assert torch.equal(fg, fg2) and torch.equal(seed, seed2)
    vec = torch.full((16,), -0.1)
    vec[[5, 6]] = 1.0
    vec[6] = 2.0
    fg, seed = mc.orient(vec[None], grid)
    assert fg[0].nonzero().flatten().tolist() == [5, 6] and int(seed) == 6
    # seed on the low side (negative peak): the side holding the seed is chosen
    fg2, seed2 = mc.orient(-vec[None], grid)
    assert torch.equal(fg, fg2) and int(seed2) == 6


def test_seed_component_keeps_only_the_seeds_fragment():
    fg = torch.zeros(1, 6, 6, dtype=torch.bool)
    fg[0, 0:2, 0:3] = True
    fg[0, 4:6, 3:6] = True
    fg[0, 2, 4] = True  # touches the second fragment's top edge: 4-connected to it
    fg[0, 3, 3] = True  # diagonal to (2, 4): not 4-connected
    fg[0, 3, 4] = True  # joins (2, 4) with (4, 4)
    comp = mc.seed_component(fg.view(1, -1), torch.tensor([5 * 6 + 5]), (6, 6), check_every=1)
    expected = fg.clone()
    expected[0, 0:2, 0:3] = False
    assert torch.equal(comp.view(1, 6, 6), expected)
    # end to end: two same-looking blobs, only the one holding the seed survives
    lab = torch.zeros(10, 10, dtype=torch.long)
    lab[1:4, 1:4] = 1
    lab[6:9, 6:9] = 1
    m = run(lab, MaskCutConfig(num_masks=1)).masks[0, 0]
    assert int(m.sum()) == 9 and (torch.equal(m[1:4, 1:4], torch.ones(3, 3, dtype=torch.bool))
                                  or torch.equal(m[6:9, 6:9], torch.ones(3, 3, dtype=torch.bool)))


def test_small_masks_are_dropped():
    lab = torch.zeros(20, 20, dtype=torch.long)
    lab[3:11, 3:11] = 1
    lab[14:16, 14:16] = 2  # 4 of 400 patches = 1%
    out = run(lab)
    assert torch.equal(out.masks[0, 0], lab == 1)
    assert not out.masks[0, 1:].any() and (out.scores[0, 1:] == 0).all()
    kept = run(lab, MaskCutConfig(min_area_frac=0.0))
    assert torch.equal(kept.masks[0, 1], lab == 2)


def test_outputs_are_disjoint():
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(3, 64, 16, generator=g)
    out = maskcut_patches(keys, (8, 8))
    assert (out.masks.sum(1) <= 1).all()


def test_batched_equals_one_by_one():
    frames = []
    for s in range(4):
        g = torch.Generator().manual_seed(s)
        lab = torch.zeros(10, 10, dtype=torch.long)
        for k in range(1, 4):
            y, x = torch.randint(0, 7, (2,), generator=g).tolist()
            lab[y:y + 3 + k % 2, x:x + 3] = k
        frames.append(blob_keys(lab, seed=s))
    keys = torch.cat(frames)
    batched = maskcut_patches(keys, (10, 10))
    for i in range(len(frames)):
        single = maskcut_patches(keys[i:i + 1], (10, 10))
        assert torch.equal(single.masks[0], batched.masks[i])
        assert torch.allclose(single.scores[0], batched.scores[i], atol=1e-5)


def test_eigenvector_matches_generalised_problem():
    g = torch.Generator().manual_seed(0)
    a = mc.binary_affinity(torch.randn(1, 30, 6, generator=g), 0.15, 1e-5)
    vec = mc.second_eigenvector(a)[0].double().numpy()
    an = a[0].double().numpy()
    d = np.diag(an.sum(1))
    _, ref = scipy.linalg.eigh(d - an, d, subset_by_index=[1, 2])
    ref = ref[:, 0]
    assert np.allclose(np.abs(vec @ d @ ref), 1, atol=1e-3)  # same vector up to sign, x^T D x = 1


@pytest.mark.parametrize("n", [30, 400])
def test_cpu_eigenvector_matches_dense_generalised_solution(n):
    """Dense path (small graphs) and Lanczos path (large ones) both give scipy's generalised eigenvector."""
    g = torch.Generator().manual_seed(n)
    lab = torch.randint(0, 3, (n,), generator=g)
    keys = torch.nn.functional.one_hot(lab, 6).float() + 0.3 * torch.randn(n, 6, generator=g)
    a = mc.binary_affinity(keys[None], 0.15, 1e-5)
    vec = mc.second_eigenvector(a)[0].double().numpy()
    an = a[0].double().numpy()
    d = np.diag(an.sum(1))
    ref = scipy.linalg.eigh(d - an, d, subset_by_index=[1, 1])[1][:, 0]
    assert np.allclose(np.abs(vec @ d @ ref), 1, atol=1e-4)


def test_lanczos_falls_back_to_dense_when_arpack_fails(monkeypatch):
    g = torch.Generator().manual_seed(1)
    a = mc.binary_affinity(torch.randn(1, 200, 6, generator=g), 0.15, 1e-5)
    expected = mc.second_eigenvector(a)[0]

    def no_convergence(*args, **kwargs):
        raise mc.scipy.sparse.linalg.ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((200, 0)))

    monkeypatch.setattr(mc.scipy.sparse.linalg, "eigsh", no_convergence)
    fallback = mc.second_eigenvector(a)[0]
    assert torch.allclose(fallback.abs(), expected.abs(), atol=1e-4)


def test_subspace_solver_agrees_on_structured_graphs():
    lab = torch.zeros(12, 12, dtype=torch.long)
    lab[2:7, 2:8] = 1
    lab[8:11, 6:11] = 2
    exact = run(lab)
    approx = run(lab, MaskCutConfig(solver="subspace"))
    assert torch.equal(exact.masks, approx.masks)


def reference_upsample(patch_mask: np.ndarray, square: int, size: tuple[int, int]) -> np.ndarray:
    """CutLER's maskcut.py for one [h, w] patch mask, no CRF: ``F.interpolate(..., mode='nearest')`` to the square,
    ``Image.fromarray(uint8(mask * 255)).resize((W, H))`` (PIL's default filter), then ``create_annotation_info``'s
    threshold (``> max / 2`` -> max, ``<= max / 2`` -> min; pycocotools keeps the non-zero pixels)."""
    from PIL import Image

    big = torch.nn.functional.interpolate(torch.from_numpy(patch_mask.astype(np.float64))[None, None],
                                          size=(square, square), mode="nearest")[0, 0].numpy()
    resized = np.asarray(Image.fromarray(np.uint8(big * 255)).resize((size[1], size[0]))).copy()
    upper, lower = resized.max(), resized.min()
    thresh = upper / 2.0
    resized[resized > thresh] = upper
    resized[resized <= thresh] = lower
    return resized > 0


@pytest.mark.parametrize("patch", [16, 8])
def test_upsampled_masks_equal_the_references_pixel_for_pixel(patch):
    g = torch.Generator().manual_seed(patch)
    grid = 480 // patch
    masks = torch.zeros(2, 3, grid, grid, dtype=torch.bool)
    masks[0, 0] = torch.rand(grid, grid, generator=g) > 0.6  # scattered patches, single ones included
    masks[0, 1, 3:9, 5:grid - 2] = True  # a block
    masks[0, 2, grid - 1, 0] = True  # one corner patch
    masks[1, 0] = torch.rand(grid, grid, generator=g) > 0.95
    # masks[1, 1] and [1, 2] stay empty (dropped cuts)
    # DAVIS, 720p, wider but less tall (Pillow 13 resizes vertically first), portrait, smaller than the square
    for size in [(480, 854), (720, 1280), (360, 640), (640, 360), (200, 300)]:
        ref = np.stack([[reference_upsample(m.numpy(), 480, size) for m in f] for f in masks])
        for engine in ("auto", "torch"):
            ours = mc.upsample_masks(masks, size, square=(480, 480), engine=engine)
            assert ours.shape == (2, 3, *size) and ours.dtype == torch.bool
            assert np.array_equal(ours.numpy(), ref), (size, engine)
    assert not mc.upsample_masks(masks, (480, 854), square=(480, 480))[1, 1:].any()
    with pytest.raises(ValueError, match="tile"):
        mc.upsample_masks(masks, (480, 854), square=(500, 500))


def test_upsample_and_rle():
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :2] = True
    masks[0, 1, 2:, :] = True
    up = mc.upsample_masks(masks, (30, 41), square=(480, 480))
    assert up.shape == (1, 2, 30, 41) and up[0, 0, :10, :14].all() and not up[0, 0, 20:].any()
    rles = mc.to_rles(up, torch.tensor([[0.9, 0.0]]))
    assert len(rles[0]) == 2 and rles[0][0].rle["size"] == [30, 41]
    assert np.array_equal(mask_utils.decode(rles[0][1].rle), up[0, 1].numpy())
    empty = mc.to_rles(torch.zeros(2, 3, 5, 5, dtype=torch.bool), torch.zeros(2, 3))
    assert empty == [[], []]


def test_config_errors():
    with pytest.raises(UserError, match="solver"):
        MaskCutConfig(solver="magic")
    for tau in (float("nan"), float("inf"), 1.0, -1.5):  # no graph at all; NaN also never equals its config.json
        with pytest.raises(UserError, match="tau="):
            MaskCutConfig(tau=tau)
    if not mc.crf_available():
        with pytest.raises(UserError, match="pydensecrf2"):
            mc.require_crf()


def reference_maskcut(keys: np.ndarray, dims: tuple[int, int], tau: float = 0.15, n_masks: int = 3) -> list[np.ndarray]:
    """A loop-by-loop, float64 scipy re-statement of CutLER's ``maskcut_forward`` at patch level (oracle).

    Only difference from the script: the eigenvector's sign is fixed positive at its peak (scipy's sign is
    arbitrary; see the module docstring of ``uvis.pseudo.maskcut``).
    """
    from scipy import ndimage

    feats = keys.T.astype(np.float64)  # [D, n] as the reference holds them
    painting = np.zeros(dims)
    outputs: list[np.ndarray] = []
    current = None
    for i in range(n_masks):
        if i > 0:
            painting = ((painting + current) > 0).astype(float)
            feats = (feats.reshape(-1, *dims) * (1 - painting)).reshape(feats.shape[0], -1)
        norm = feats / np.maximum(np.linalg.norm(feats, axis=0, keepdims=True), 1e-12)
        a = norm.T @ norm
        a = np.where(a > tau, 1.0, 1e-5)
        d = np.diag(a.sum(1))
        _, vecs = scipy.linalg.eigh(d - a, d, subset_by_index=[1, 2])
        vec = vecs[:, 0]
        if vec[np.argmax(np.abs(vec))] < 0:
            vec = -vec
        bip = vec > vec.mean()
        seed = np.argmax(np.abs(vec))
        b2 = bip.reshape(dims)
        nc = int(b2[0, 0]) + int(b2[0, -1]) + int(b2[-1, 0]) + int(b2[-1, -1])
        reverse = True if nc >= 3 else bip[seed] != 1
        if reverse:
            bip = ~bip
            seed = np.argmax(-vec)
        else:
            seed = np.argmax(vec)
        objects, _ = ndimage.label(bip.reshape(dims).astype(float))
        mask = (objects == objects[np.unravel_index(seed, dims)]).astype(float)
        if i >= 1:
            inter = np.logical_and(current > 0.5, mask > 0.5).sum()
            union = np.logical_or(current > 0.5, mask > 0.5).sum()
            iou = inter / union if union else 0.0
            if iou > 0.5 or mask.mean() <= 0.01:
                mask = np.zeros(dims)
        current = mask
        taken = sum(outputs) if outputs else 0
        outputs.append(np.clip(mask - taken, 0, None) > 0)
    return outputs


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_restatement(seed, framed):
    """Random scenes: free blobs (successive cuts, filtered and re-found masks), or blobs inside a big region
    framed by a thin border (the corner rule flips the first cut)."""
    g = torch.Generator().manual_seed(seed)
    h, w = 9, 11
    lab = torch.zeros(h, w, dtype=torch.long)
    if framed:
        lab[1:h - 1, 1:w - 1] = 5
    for k in range(1, 3 if framed else 5):
        y, x = torch.randint(1, h - 3, (1,), generator=g).item(), torch.randint(1, w - 3, (1,), generator=g).item()
        sy, sx = torch.randint(2, 4 if framed else 5, (2,), generator=g).tolist()
        lab[y:y + sy, x:x + sx] = k
    # noisy keys: some edges fall on either side of tau, as with real features
    keys = torch.nn.functional.one_hot(lab.flatten(), 8).float() + 0.35 * torch.randn(h * w, 8, generator=g)
    ours = maskcut_patches(keys[None], (h, w)).masks[0]
    ref = reference_maskcut(keys.numpy(), (h, w))
    assert ours[0].any()
    for k in range(3):
        assert np.array_equal(ours[k].numpy(), ref[k]), k


def test_crf_outputs_are_kept_as_refined(monkeypatch):
    """As in the reference, the CRF's masks are not made disjoint again (the masks going in are), and a refinement
    with IoU < crf_min_iou with its mask drops that mask."""
    from scipy import ndimage

    def grow(image, mask):
        return ndimage.binary_dilation(mask, iterations=2)

    monkeypatch.setattr(mc, "crf_refine", grow)
    masks = torch.zeros(1, 3, 16, 16, dtype=torch.bool)
    masks[0, 0, 2:8, 2:8] = True
    masks[0, 1, 2:8, 8:14] = True  # touches mask 0: their grown versions overlap
    masks[0, 2, 12, 12] = True  # one pixel: grown, its IoU with itself is 1/13
    images = np.zeros((1, 16, 16, 3), np.uint8)
    out = mc.apply_crf(images, masks, min_iou=0.2)[0].numpy()
    assert np.array_equal(out[0], grow(None, masks[0, 0].numpy()))
    assert np.array_equal(out[1], grow(None, masks[0, 1].numpy()))
    assert (out[0] & out[1]).any() and not out[2].any()


def test_crf_gets_the_lanczos_square_and_disjoint_masks(monkeypatch):
    """With --crf, MaskCut hands the CRF the frame as DINO saw it (PIL's Lanczos resize to the square, as the
    reference's ``I_new``) and each disjoint patch mask enlarged to the square by nearest neighbour."""
    from PIL import Image

    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def record(image, mask):
        seen.append((image.copy(), mask.copy()))
        return mask

    monkeypatch.setattr(mc, "crf_refine", record)
    monkeypatch.setattr(mc, "require_crf", lambda: None)
    keys = blob_keys(torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]))

    class Features:  # fixed keys on a 4x4 grid of 8-pixel patches
        patch_size = 8
        device = torch.device("cpu")

        def __call__(self, x):
            assert x.shape == (1, 3, 32, 32)
            return type("F", (), {"keys": keys, "grid": (4, 4)})()

    frame = np.random.default_rng(0).integers(0, 256, (1, 45, 70, 3), dtype=np.uint8)
    out = mc.MaskCut(Features(), MaskCutConfig(resolution=32, crf=True, num_masks=1))(frame)
    square = np.asarray(Image.fromarray(frame[0]).resize((32, 32), Image.Resampling.LANCZOS))
    assert len(seen) == 1 and np.array_equal(seen[0][0], square)
    assert seen[0][1].shape == (32, 32) and seen[0][1][8:24, 8:24].all() and seen[0][1].sum() == 256
    assert len(out[0]) == 1


def test_rles_found_on_the_device_equal_the_host_path():
    g = torch.Generator().manual_seed(5)
    masks = torch.rand(3, 4, 20, 30, generator=g) > 0.6
    masks[1] = False  # a frame without masks
    masks[0, 2] = False  # a dropped cut
    scores = torch.rand(3, 4, generator=g)
    host = mc.to_rles(masks, scores, on_device=False)
    device = mc.to_rles(masks, scores, on_device=True)
    assert [len(f) for f in host] == [3, 0, 4]
    assert [[(m.rle, m.score) for m in f] for f in device] == [[(m.rle, m.score) for m in f] for f in host]


def test_crf_refine_is_the_references_densecrf():
    """``crf_refine`` = CutLER's ``crf.densecrf`` (bilinear to the image size, float64 softmax of [bg, fg], the
    same CRF) followed by the script's ``binary_fill_holes(... >= 0.5)``."""
    pytest.importorskip("pydensecrf.densecrf", reason="the optional uvis[crf] extra (pydensecrf2) is not installed")
    import pydensecrf.densecrf as dcrf
    import pydensecrf.utils as crf_utils
    from scipy import ndimage

    def reference(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        h, w = mask.shape
        fg = mask.reshape(1, h, w).astype(float)
        logits = torch.from_numpy(np.concatenate((1 - fg, fg), axis=0))
        logits = torch.nn.functional.interpolate(logits.unsqueeze(0), size=image.shape[:2], mode="bilinear").squeeze()
        probs = torch.nn.functional.softmax(logits, dim=0).cpu().numpy()
        d = dcrf.DenseCRF2D(w, h, 2)
        d.setUnaryEnergy(np.ascontiguousarray(crf_utils.unary_from_softmax(probs)))
        d.addPairwiseGaussian(sxy=3, compat=7)
        d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(image), compat=10)
        q = np.array(d.inference(10)).reshape((2, h, w))
        return ndimage.binary_fill_holes(np.argmax(q, axis=0).astype(np.float32) >= 0.5)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
    image[10:30, 12:36] += 150  # a bright object
    mask = np.zeros((48, 48), bool)
    mask[8:32, 8:32] = True  # a blocky mask around it, as a patch mask enlarged
    ours = mc.crf_refine(image, mask)
    assert np.array_equal(ours, reference(image, mask)) and ours[15, 20] and not ours[40, 40]
