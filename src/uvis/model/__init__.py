"""Stage 2: a Mask2Former-style per-frame instance segmenter trained on pseudo-labels.

Parts: a timm ResNet backbone (random init, or the self-supervised DINO ResNet-50 checkpoint — never a model
trained on human labels), an FPN pixel decoder with a small transformer encoder on the coarsest level, and a
masked-attention transformer decoder with learnable queries that predicts, after every layer, class logits
[B, Q, K+1], mask logits [B, Q, H/4, W/4] and query embeddings [B, Q, D] (the tracker's appearance cue).

Why our own compact implementation rather than ``transformers``' ``Mask2FormerForUniversalSegmentation``:
that would add ``transformers`` + ``huggingface_hub`` + ``tokenizers`` + ``safetensors`` (~20 MB of wheels,
a 13.5 MB wheel for ``transformers`` alone) for one model; its pixel decoder's multi-scale deformable
attention runs, without the compiled kernel, through a ``grid_sample`` fallback that is slow on CPU; its
backbone goes through ``AutoBackbone``/``TimmBackbone`` wrappers that complicate loading the DINO ResNet-50
checkpoint; and it bundles its own matcher and loss. We need the loss (point-sampled Hungarian matching, deep
supervision, class-agnostic mode) and the query embeddings under our control anyway, so ~400 lines of
plain PyTorch (Mask2Former paper semantics, no custom CUDA ops) are simpler to read, test and resume.
The one deliberate simplification: the pixel decoder is an FPN with a standard transformer encoder on the
1/32 level instead of the multi-scale deformable-attention encoder.
"""

from uvis.model.config import ModelConfig
from uvis.model.model import VISModel, build_model

__all__ = ["ModelConfig", "VISModel", "build_model"]
