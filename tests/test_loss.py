import torch

from uvis.model.loss import LossConfig, SetCriterion, hungarian_match, point_sample


def _scene(n: int = 3, size: int = 128, seed: int = 0) -> torch.Tensor:
    """n disjoint axis-aligned boxes on a size x size canvas."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    step = size // n
    for i in range(n):
        h = int(torch.randint(step // 3, step - 2, (1,), generator=g))
        w = int(torch.randint(size // 4, size // 2, (1,), generator=g))
        masks[i, i * step + 1 : i * step + 1 + h, 5 : 5 + w] = True
    return masks


def _perfect_outputs(masks: torch.Tensor, labels: torch.Tensor, num_classes: int, num_queries: int) -> dict:
    n = len(masks)
    logits = torch.full((1, num_queries, num_classes + 1), -20.0)
    logits[0, :, num_classes] = 20.0  # extra queries say "no object"
    logits[0, torch.arange(n), num_classes] = -20.0
    logits[0, torch.arange(n), labels] = 20.0
    mask_logits = torch.full((1, num_queries, *masks.shape[1:]), -20.0)
    mask_logits[0, :n] = torch.where(masks, 20.0, -20.0)
    return {"pred_logits": logits, "pred_masks": mask_logits}


def test_point_sample_reads_pixel_centres():
    maps = torch.arange(12.0).view(1, 3, 4)
    coords = torch.tensor([[[0.125, 1 / 6], [0.875, 5 / 6]]])  # centres of pixels (0, 0) and (2, 3)
    assert torch.allclose(point_sample(maps, coords), torch.tensor([[0.0, 11.0]]), atol=1e-5)


def test_perfect_prediction_has_near_zero_loss_and_identity_matching():
    torch.manual_seed(0)
    masks = _scene()
    labels = torch.tensor([2, 0, 1])
    out = _perfect_outputs(masks, labels, num_classes=3, num_queries=5)
    targets = [{"labels": labels, "masks": masks}]
    cfg = LossConfig(num_points=2048, importance_sample_ratio=0.0)
    rows, cols = hungarian_match(out["pred_logits"], out["pred_masks"], targets, cfg)[0]
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [0, 1, 2]
    # Uniform points: only the one-pixel band of bilinear blur at mask borders costs anything.
    losses = SetCriterion(3, cfg)(out, targets)
    assert losses["loss_ce"] < 1e-3
    assert losses["loss_mask"] < 0.1
    assert losses["loss_dice"] < 0.05
    # Importance sampling concentrates points on those borders, yet a perfect prediction still beats a
    # prediction with the masks assigned to the wrong objects by far.
    crit = SetCriterion(3, LossConfig(num_points=2048))
    good = crit(out, targets)
    wrong = _perfect_outputs(masks.roll(1, dims=0), labels, num_classes=3, num_queries=5)
    bad = crit(wrong, targets)
    assert good["loss"] < 0.2 * bad["loss"]


def test_permuted_targets_are_matched():
    torch.manual_seed(1)
    masks = _scene(n=4, seed=3)
    labels = torch.tensor([0, 0, 0, 0])  # class-agnostic: K = 1
    out = _perfect_outputs(masks, labels, num_classes=1, num_queries=8)
    perm = torch.tensor([2, 0, 3, 1])
    targets = [{"labels": labels[perm], "masks": masks[perm]}]
    rows, cols = hungarian_match(out["pred_logits"], out["pred_masks"], targets, LossConfig(num_points=1024))[0]
    # prediction rows[i] is matched with target cols[i], i.e. the mask it predicts: masks[rows[i]] == masks[perm[cols[i]]]
    assert perm[cols].tolist() == rows.tolist()
    losses = SetCriterion(1, LossConfig(num_points=1024, importance_sample_ratio=0.0))(out, targets)
    assert losses["loss_dice"] < 0.05


def test_empty_targets_and_deep_supervision_gradients():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, requires_grad=True)
    masks = torch.randn(2, 4, 8, 8, requires_grad=True)
    aux = [{"pred_logits": logits * 2, "pred_masks": masks * 2}]
    out = {"pred_logits": logits, "pred_masks": masks, "aux_outputs": aux}
    targets = [
        {"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 32, 32)},
        {"labels": torch.tensor([1]), "masks": torch.ones(1, 32, 32)},
    ]
    crit = SetCriterion(2, LossConfig(num_points=64))
    losses = crit(out, targets)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert masks.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0
    no_aux = SetCriterion(2, LossConfig(num_points=64, deep_supervision=False))
    torch.manual_seed(0)
    single = no_aux({"pred_logits": logits, "pred_masks": masks}, targets)["loss"]
    assert single < losses["loss"]  # the auxiliary layer adds its own term
