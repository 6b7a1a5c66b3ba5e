"""Stage 2: a Mask2Former-style per-frame instance segmenter trained on pseudo-labels.

Parts: a timm ResNet backbone or a DINO ViT with a simple feature pyramid (random init, or the self-supervised
DINO checkpoints — never a model trained on human labels), an FPN pixel decoder with a small transformer
encoder on the coarsest level, and a masked-attention transformer decoder with learnable queries that
predicts, after every layer, class logits [B, Q, K+1], mask logits [B, Q, H/4, W/4] and query embeddings
[B, Q, D] (the tracker's appearance cue).

Why our own compact implementation rather than ``transformers``' ``Mask2FormerForUniversalSegmentation``
(checked against the transformers 5.24.0 wheel): its multi-scale deformable attention is pure PyTorch
(``grid_sample``), so it would run without compiled ops, but it would add a 13.5 MB wheel plus
``huggingface-hub``, ``tokenizers``, ``safetensors``, ``regex``, ``pyyaml`` and ``typer`` for one model; its
backbone goes through ``AutoBackbone``/``TimmBackbone`` wrappers that complicate loading the DINO checkpoints;
and it bundles its own matcher and loss. We need the loss (point-sampled Hungarian matching, deep supervision,
class-agnostic mode), the query embeddings and an exactly resumable training loop under our control anyway,
so ~500 lines of plain PyTorch (Mask2Former paper semantics, no custom CUDA ops) are simpler to read, test and
keep stable.

The one deliberate simplification: the pixel decoder is an FPN with a standard transformer encoder on the
1/32 level instead of the multi-scale deformable-attention encoder.
"""

from uvis.model.config import ModelConfig
from uvis.model.model import VISModel, build_model

__all__ = ["ModelConfig", "VISModel", "build_model"]
# The per-frame predictor for the tracker: ``uvis.predict.trained.TrainedPredictor.from_run(run_dir)``.
