"""Mask2Former's set loss: Hungarian matching on point-sampled costs, then class CE + mask BCE + dice.

Matching samples ``num_points`` uniform random points shared by all predictions and targets of an image;
the loss samples points per matched mask by importance (``oversample_ratio`` × more candidates, the
``importance_sample_ratio`` share picked where the prediction is most uncertain, |logit| smallest, the rest
uniform). The class loss down-weights the no-object class by ``no_object_weight``. Every decoder layer's
prediction is supervised with its own matching (deep supervision).

CLIP distillation (when the model has a CLIP head and the targets carry ``clip`` embeddings): each matched
query's projection is pulled towards its pseudo-instance's CLIP image embedding, ``1 - cosine`` summed over
matched pairs and normalised like the mask losses. Targets whose embedding row is all zero (no embedding)
are left out. Matching itself ignores it (the pseudo-masks, not CLIP, define which query is which object).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


@dataclass
class LossConfig:
    """Loss weights and point sampling, as Mask2Former (class 2, mask BCE 5, dice 5; 112² points)."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    deep_supervision: bool = True
    clip_weight: float = 2.0  # CLIP distillation (only with a CLIP head and embeddings in the targets)

    def to_json(self) -> dict:
        return asdict(self)


def point_sample(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly read [N, H, W] maps at [N, P, 2] (x, y) points in [0, 1] → [N, P]."""
    grid = (2.0 * coords - 1.0).unsqueeze(2)  # [N, P, 1, 2]
    return F.grid_sample(maps.unsqueeze(1), grid, align_corners=False).squeeze(3).squeeze(1)


def pairwise_sigmoid_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE over points between every prediction [Q, P] and every target [N, P] → [Q, N]."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid()
    num = 2 * p @ targets.T
    den = p.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (num + 1) / (den + 1)


@torch.no_grad()
def hungarian_match(logits: torch.Tensor, masks: torch.Tensor, targets: list[dict], cfg: LossConfig
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, (prediction indices, target indices) minimising class + mask-BCE + dice cost."""
    out = []
    for b, tgt in enumerate(targets):
        n = len(tgt["labels"])
        if n == 0:
            empty = torch.zeros(0, dtype=torch.long)
            out.append((empty, empty))
            continue
        prob = logits[b].float().softmax(-1)
        cost_class = -prob[:, tgt["labels"]]
        points = torch.rand(1, cfg.num_points, 2, device=masks.device)
        pred = point_sample(masks[b].float(), points.expand(masks.shape[1], -1, -1))
        gt = point_sample(tgt["masks"].float(), points.expand(n, -1, -1))
        cost = (cfg.class_weight * cost_class + cfg.mask_weight * pairwise_sigmoid_ce(pred, gt)
                + cfg.dice_weight * pairwise_dice(pred, gt))
        cost = cost.cpu().numpy()
        if not np.isfinite(cost).all():
            # A diverged model (NaN/inf outputs): match anyway so every rank reaches the trainer's collective
            # finiteness check of the loss, which stops the run with a clear error (scipy rejects such costs).
            cost = np.nan_to_num(cost, nan=1e9, posinf=1e9, neginf=-1e9)
        rows, cols = linear_sum_assignment(cost)
        out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
    return out


@torch.no_grad()
def uncertain_points(logits: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """[M, P, 2] points per mask: most uncertain of ``oversample_ratio * P`` random ones, plus random ones."""
    m = logits.shape[0]
    num_sampled = int(cfg.num_points * cfg.oversample_ratio)
    cand = torch.rand(m, num_sampled, 2, device=logits.device)
    uncertainty = -point_sample(logits, cand).abs()
    k = int(cfg.importance_sample_ratio * cfg.num_points)
    idx = uncertainty.topk(k, dim=1).indices
    picked = torch.gather(cand, 1, idx[..., None].expand(-1, -1, 2))
    rand = torch.rand(m, cfg.num_points - k, 2, device=logits.device)
    return torch.cat([picked, rand], dim=1)


class SetCriterion(torch.nn.Module):
    """Computes the weighted Mask2Former loss for a model output and a batch of per-frame targets.

    targets: one dict per image with ``labels`` [N] (long, in [0, K)) and ``masks`` [N, H, W] (bool/float,
    any resolution: points are sampled in normalised coordinates), optionally ``clip`` [N, C] (unit CLIP
    image embeddings; zero rows = none) for the distillation loss ``loss_clip``.
    """

    def __init__(self, num_classes: int, cfg: LossConfig | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.cfg = cfg or LossConfig()
        weight = torch.ones(num_classes + 1)
        weight[-1] = self.cfg.no_object_weight
        self.register_buffer("class_weight", weight, persistent=False)

    def num_masks(self, targets: list[dict], device: torch.device) -> float:
        """Average number of target masks per process (normalises the mask losses identically on all ranks)."""
        n = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(n)
            n = n / dist.get_world_size()
        return max(float(n.item()), 1.0)

    def single(self, out: dict, targets: list[dict], num_masks: float) -> dict[str, torch.Tensor]:
        logits, masks = out["pred_logits"].float(), out["pred_masks"].float()
        match = hungarian_match(logits, masks, targets, self.cfg)
        b_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(match)]).to(logits.device)
        q_idx = torch.cat([src for src, _ in match]).to(logits.device)
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device)
        if len(q_idx):
            matched_labels = torch.cat([t["labels"][tgt.to(t["labels"].device)] for t, (_, tgt) in zip(targets, match, strict=True)])
            target_classes[b_idx, q_idx] = matched_labels.to(logits.device)
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.class_weight.to(logits.device))
        distill = "pred_clip" in out and all("clip" in t for t in targets)
        if len(q_idx) == 0:
            zero = masks.sum() * 0.0
            parts = {"loss_ce": loss_ce, "loss_mask": zero, "loss_dice": zero}
            if distill:
                parts["loss_clip"] = out["pred_clip"].sum() * 0.0
            return parts
        src = masks[b_idx, q_idx]
        tgt = torch.cat([t["masks"][j.to(t["masks"].device)].float() for t, (_, j) in zip(targets, match, strict=True)])
        coords = uncertain_points(src, self.cfg)
        with torch.no_grad():
            labels = point_sample(tgt.to(src.device), coords)
        point_logits = point_sample(src, coords)
        loss_mask = F.binary_cross_entropy_with_logits(point_logits, labels, reduction="none").mean(1).sum() / num_masks
        p = point_logits.sigmoid()
        dice = 1 - (2 * (p * labels).sum(-1) + 1) / (p.sum(-1) + labels.sum(-1) + 1)
        parts = {"loss_ce": loss_ce, "loss_mask": loss_mask, "loss_dice": dice.sum() / num_masks}
        if distill:
            parts["loss_clip"] = self.clip_loss(out["pred_clip"][b_idx, q_idx], targets, match, num_masks)
        return parts

    @staticmethod
    def clip_loss(pred: torch.Tensor, targets: list[dict], match: list, num_masks: float) -> torch.Tensor:
        """Sum over matched pairs with an embedding of ``1 - cos(pred, target)``, / ``num_masks``."""
        tgt = torch.cat([t["clip"][j.to(t["clip"].device)].float() for t, (_, j) in zip(targets, match, strict=True)])
        tgt = tgt.to(pred.device)
        valid = tgt.norm(dim=-1) > 0
        cos = (pred.float() * F.normalize(tgt, dim=-1)).sum(-1)
        return ((1 - cos) * valid).sum() / num_masks

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Returns ``loss`` (weighted total over all supervised layers) and the final layer's parts."""
        num_masks = self.num_masks(targets, outputs["pred_logits"].device)
        parts = self.single(outputs, targets, num_masks)
        layers = [parts]
        if self.cfg.deep_supervision:
            layers += [self.single(aux, targets, num_masks) for aux in outputs.get("aux_outputs", [])]
        total = sum(self.cfg.class_weight * p["loss_ce"] + self.cfg.mask_weight * p["loss_mask"]
                    + self.cfg.dice_weight * p["loss_dice"] + self.cfg.clip_weight * p.get("loss_clip", 0.0)
                    for p in layers)
        return {"loss": total, **parts}
