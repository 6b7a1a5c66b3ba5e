"""A hand-built DINO-layout ViT whose last-block keys are a deterministic function of colour, texture and position.

Random weights give a complete patch graph (every cosine above tau), so MaskCut has nothing to cut; this
checkpoint gives real frames a structured graph instead, for comparing MaskCut implementations side by side.
No randomness: every weight is written out below.

- ``patch_embed``: per patch, an opponent colour code of the (normalised) channel means (brightness, red-green,
  yellow-blue), and per channel the difference of the right and left halves and of the bottom and top halves
  (signed gradients);
- ``pos_embed``: zero-mean low-frequency Fourier features of the patch's row and column on the 224-pixel grid
  (both implementations resample them to the input grid with DINO's bicubic rule);
- block 0's MLP turns the signed gradients into a texture energy (GELU(g) + GELU(-g), a smooth |g|) minus a
  constant, written into its own channel; every other attention and MLP branch outputs exactly 0, so the
  residual stream reaches the last block unchanged;
- the last block's key projection reads colour, texture energy and position (weighted), so the keys' cosine
  similarity is high for patches alike in colour, texture and place.

    from structured_dino import save_structured_vit
    save_structured_vit("dino_vits16", "dino_deitsmall16_pretrain.pth")
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from uvis.features.backbones import VITS, build_vit, official_state_dict

COLOUR, GRADIENT, TEXTURE, POSITION = slice(0, 3), slice(3, 9), 9, slice(10, 16)
OPPONENT = ((1 / 3, 1 / 3, 1 / 3), (1.0, -1.0, 0.0), (0.5, 0.5, -1.0))  # brightness, red-green, yellow-blue
WEIGHTS = {"colour": (1.0, 2.0, 2.0), "texture": 1.5, "position": 0.8}  # key = weighted concatenation
TEXTURE_OFFSET = 2.0  # subtracted from the texture energy so flat and textured patches point apart


def structured_vit_state(name: str) -> dict[str, torch.Tensor]:
    """The state dict (official DINO key names) of backbone ``name`` (e.g. ``dino_vits16``), built by hand."""
    arch = VITS[name]
    model = build_vit(arch)
    state = {k: torch.zeros_like(v) for k, v in official_state_dict(model).items()}
    d, p = arch.embed_dim, arch.patch_size
    for key in state:
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "norm.weight":
            state[key].fill_(1.0)  # LayerNorms: plain standardisation
    # patch embedding: colour means and signed half-differences per channel
    w = state["patch_embed.proj.weight"]  # [D, 3, p, p]
    half = p // 2
    for o, mix in enumerate(OPPONENT):
        for c in range(3):
            w[COLOUR.start + o, c] = mix[c] / (p * p)
    for c in range(3):
        w[GRADIENT.start + 2 * c, c, :, half:] = 2.0 / (p * p)
        w[GRADIENT.start + 2 * c, c, :, :half] = -2.0 / (p * p)
        w[GRADIENT.start + 2 * c + 1, c, half:, :] = 2.0 / (p * p)
        w[GRADIENT.start + 2 * c + 1, c, :half, :] = -2.0 / (p * p)
    # position: cos(pi*u), sin(2*pi*u), cos(2*pi*u) for the row and the column, u in (0, 1)
    side = arch.img_size // p
    pos = state["pos_embed"]  # [1, 1 + side * side, D]
    for i in range(side):
        for j in range(side):
            u, v = (i + 0.5) / side, (j + 0.5) / side
            feats = [f(t) for t in (u, v) for f in (lambda t: math.cos(math.pi * t), lambda t: math.sin(2 * math.pi * t),
                                                     lambda t: math.cos(2 * math.pi * t))]
            pos[0, 1 + i * side + j, POSITION] = torch.tensor(feats) * 0.5
    # block 0 MLP: texture energy from the (normalised) signed gradients
    fc1, fc2 = state["blocks.0.mlp.fc1.weight"], state["blocks.0.mlp.fc2.weight"]  # [4D, D], [D, 4D]
    for g in range(6):
        fc1[2 * g, GRADIENT.start + g] = 1.0
        fc1[2 * g + 1, GRADIENT.start + g] = -1.0
        fc2[TEXTURE, 2 * g] = fc2[TEXTURE, 2 * g + 1] = 1.0 / 6
    state["blocks.0.mlp.fc2.bias"][TEXTURE] = -TEXTURE_OFFSET
    # last block: keys = weighted colour, texture energy, position (the q and v parts stay 0)
    last = f"blocks.{arch.depth - 1}.attn.qkv.weight"
    qkv = state[last]  # [3D, D]; rows D..2D are the keys
    for c in range(3):
        qkv[d + c, COLOUR.start + c] = WEIGHTS["colour"][c]
    qkv[d + 3, TEXTURE] = WEIGHTS["texture"]
    for k in range(POSITION.stop - POSITION.start):
        qkv[d + 4 + k, POSITION.start + k] = WEIGHTS["position"]
    return state


def save_structured_vit(name: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(structured_vit_state(name), path)
    return path
