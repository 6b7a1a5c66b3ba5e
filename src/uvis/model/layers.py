"""Building blocks: sine positional encoding, the FPN pixel decoder and the masked-attention decoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_encoding(x: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's 2-D sine encoding for a [B, C, H, W] map → [B, dim, H, W] (half y, half x)."""
    b, _, h, w = x.shape
    npf = dim // 2
    y = torch.arange(1, h + 1, device=x.device, dtype=torch.float32)[:, None].expand(h, w) / (h + 1e-6) * 2 * math.pi
    xx = torch.arange(1, w + 1, device=x.device, dtype=torch.float32)[None, :].expand(h, w) / (w + 1e-6) * 2 * math.pi
    dim_t = temperature ** (2 * (torch.arange(npf, device=x.device, dtype=torch.float32) // 2) / npf)
    px = xx[..., None] / dim_t
    py = y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).flatten(2)
    pos = torch.cat((py, px), dim=2).permute(2, 0, 1)
    return pos[None].expand(b, -1, -1, -1).to(x.dtype)


def conv_gn(cin: int, cout: int, k: int) -> nn.Sequential:
    groups = 32 if cout % 32 == 0 else 8
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.GroupNorm(groups, cout))


class PixelDecoder(nn.Module):
    """FPN over [C2..C5] with a transformer encoder on C5.

    Returns the per-pixel mask features (stride 4, ``mask_dim`` channels) and the multi-scale memory for
    the transformer decoder, coarse to fine: [stride 32, stride 16, stride 8], each ``dim`` channels.
    """

    def __init__(self, in_channels: list[int], dim: int, mask_dim: int, nheads: int, enc_layers: int,
                 enc_ffn: int):
        super().__init__()
        self.dim = dim
        self.input_proj = conv_gn(in_channels[3], dim, 1)
        layer = nn.TransformerEncoderLayer(dim, nheads, enc_ffn, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, enc_layers, enable_nested_tensor=False) if enc_layers else None
        self.lateral = nn.ModuleList([conv_gn(c, dim, 1) for c in in_channels[:3]])
        self.output = nn.ModuleList([nn.Sequential(conv_gn(dim, dim, 3), nn.ReLU()) for _ in in_channels[:3]])
        self.mask_features = nn.Conv2d(dim, mask_dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        top = self.input_proj(feats[3])
        if self.encoder is not None:
            b, c, h, w = top.shape
            pos = sine_position_encoding(top, c).flatten(2).transpose(1, 2)
            tokens = top.flatten(2).transpose(1, 2)
            # Positions are added once at the input (a simplification of per-layer addition).
            top = self.encoder(tokens + pos).transpose(1, 2).reshape(b, c, h, w)
        outs = [top]
        y = top
        for i in (2, 1, 0):
            lat = self.lateral[i](feats[i])
            y = self.output[i](lat + F.interpolate(y, size=lat.shape[-2:], mode="nearest"))
            outs.append(y)
        # outs: [s32, s16, s8, s4]
        return self.mask_features(outs[3]), outs[:3]


class MLP(nn.Module):
    def __init__(self, din: int, dhidden: int, dout: int, layers: int):
        super().__init__()
        dims = [din] + [dhidden] * (layers - 1) + [dout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Masked cross-attention → self-attention → FFN, each post-norm with a residual (Mask2Former order)."""

    def __init__(self, dim: int, nheads: int, ffn: int):
        super().__init__()
        self.nheads = nheads
        self.cross = nn.MultiheadAttention(dim, nheads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, nheads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, qpos: torch.Tensor, mem: torch.Tensor, mpos: torch.Tensor,
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        q = self.norm1(q + self.cross(q + qpos, mem + mpos, mem, attn_mask=attn_mask, need_weights=False)[0])
        qk = q + qpos
        q = self.norm2(q + self.self_attn(qk, qk, q, need_weights=False)[0])
        return self.norm3(q + self.ffn(q))


class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's transformer decoder: Q learnable queries refined over ``num_layers`` layers.

    Layer i attends to scale ``i % 3`` (coarse to fine), only where the previous prediction's mask
    (sigmoid > 0.5, resized to that scale) is on; a query whose mask is empty attends everywhere.
    Predictions are made from the initial queries and after every layer (deep supervision).
    """

    def __init__(self, dim: int, num_queries: int, nheads: int, ffn: int, num_layers: int, num_classes: int,
                 mask_dim: int, num_scales: int = 3, clip_dim: int | None = None):
        super().__init__()
        self.nheads = nheads
        self.num_scales = num_scales
        self.query_feat = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.level_embed = nn.Embedding(num_scales, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, nheads, ffn) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = MLP(dim, dim, mask_dim, 3)
        # Optional projection into CLIP's joint image-text space (open-vocabulary classification).
        self.clip_embed = MLP(dim, dim, clip_dim, 2) if clip_dim else None

    def predict(self, q: torch.Tensor, mask_features: torch.Tensor, attn_size: tuple[int, int] | None):
        """Heads on the current queries: (prediction dict, normed queries, attention mask).

        The dict has ``pred_logits``, ``pred_masks`` and, with a CLIP head, ``pred_clip`` (unit vectors).
        """
        emb = self.norm(q)
        logits = self.class_embed(emb)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(emb), mask_features)
        pred = {"pred_logits": logits, "pred_masks": masks}
        if self.clip_embed is not None:
            pred["pred_clip"] = F.normalize(self.clip_embed(emb).float(), dim=-1)
        attn = None
        if attn_size is not None:
            small = F.interpolate(masks.detach().float(), size=attn_size, mode="bilinear", align_corners=False)
            attn = small.sigmoid().flatten(2) < 0.5  # True = may not attend
            attn = attn[:, None].expand(-1, self.nheads, -1, -1).flatten(0, 1)
            attn = attn & ~attn.all(dim=-1, keepdim=True)  # fully masked rows attend everywhere
        return pred, emb, attn

    def forward(self, memory: list[torch.Tensor], mask_features: torch.Tensor) -> dict:
        b = mask_features.shape[0]
        mems, poss, sizes = [], [], []
        for i, m in enumerate(memory):
            sizes.append(m.shape[-2:])
            poss.append(sine_position_encoding(m, m.shape[1]).flatten(2).transpose(1, 2))
            mems.append(m.flatten(2).transpose(1, 2) + self.level_embed.weight[i][None, None])
        q = self.query_feat.weight[None].expand(b, -1, -1)
        qpos = self.query_pos.weight[None].expand(b, -1, -1)
        preds = []
        pred, emb, attn = self.predict(q, mask_features, sizes[0])
        preds.append(pred)
        for i, layer in enumerate(self.layers):
            lvl = i % self.num_scales
            q = layer(q, qpos, mems[lvl], poss[lvl], attn)
            nxt = sizes[(i + 1) % self.num_scales]
            pred, emb, attn = self.predict(q, mask_features, nxt)
            preds.append(pred)
        out = dict(preds[-1])
        out["embeddings"] = emb
        out["aux_outputs"] = preds[:-1]
        return out
