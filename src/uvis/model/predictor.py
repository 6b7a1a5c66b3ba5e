"""Per-frame inference with a trained run: frames in, ``FrameDetections`` (what the tracker consumes) out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from uvis.errors import UserError
from uvis.model.config import ModelConfig
from uvis.model.model import VISModel
from uvis.track.types import FrameDetections

ClassHead = Callable[[torch.Tensor], torch.Tensor]


class FramePredictor:
    """A trained VIS model applied frame by frame.

    ``predict`` returns, per frame, all Q queries as candidates:
    - ``embeddings`` [Q, D]: the final decoder output (after its LayerNorm), the tracker's appearance cue;
    - ``class_probs`` [Q, K]: softmax over the K + 1 logits with the no-object column dropped, so a row sums
      to 1 - p(no object);
    - ``scores`` [Q]: the largest class probability, i.e. the probability of the most likely real class
      (low both when the query sees nothing and when it hesitates between classes);
    - ``masks`` [Q, H, W] bool: sigmoid(mask logits) upsampled to the frame size, > 0.5.

    Open-vocabulary hook: ``predict(..., class_head=f)`` replaces the trained classifier by any
    ``f(embeddings [B, Q, D]) -> logits [B, Q, K' + 1]`` (last column = no object). An open-vocabulary head
    would be a linear projection of the query embeddings into CLIP's text space, dotted with the class-name
    text embeddings (plus a no-object logit); training that projection is future work.
    """

    def __init__(self, model: VISModel, vocabulary: list[tuple[int, str]], image_size: tuple[int, int],
                 device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.vocabulary = vocabulary
        self.image_size = tuple(image_size)

    @staticmethod
    def weights_file(run_dir: str | Path) -> Path | None:
        """The weights ``from_run`` loads: the final ones, else the last checkpoint; None before training."""
        run = Path(run_dir)
        return next((run / n for n in ("model_final.pt", "checkpoint.pt") if (run / n).is_file()), None)

    @staticmethod
    def from_run(run_dir: str | Path, device: torch.device | str | None = None) -> FramePredictor:
        """Load ``config.json``, ``vocabulary.json`` and the final weights (else the last checkpoint)."""
        run = Path(run_dir)
        for name in ("config.json", "vocabulary.json"):
            if not (run / name).is_file():
                raise UserError(f"not a training run folder (no {name})", path=run, fix="pass the --out of uvis train")
        config = json.loads((run / "config.json").read_text())
        vocab = [(int(c["id"]), str(c["name"])) for c in json.loads((run / "vocabulary.json").read_text())]
        weights = FramePredictor.weights_file(run)
        if weights is None:
            raise UserError("the run has no weights yet", path=run, fix="train it (or resume it) to the end")
        mcfg = ModelConfig.from_json(config["model"])
        mcfg.num_classes = len(vocab)
        model = VISModel(mcfg)
        state = torch.load(weights, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        return FramePredictor(model, vocab, tuple(config["image_size"]), device)

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        """Frames scaled (keeping aspect) to fit ``image_size``, as the training crops were."""
        h, w = frames.shape[1:3]
        th, tw = self.image_size
        scale = min(th / h, tw / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        x = torch.from_numpy(np.array(frames, copy=True)).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
        return F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, *, class_head: ClassHead | None = None) -> list[FrameDetections]:
        """Detections for each of ``frames`` ([B, H, W, 3] or [H, W, 3] uint8 RGB)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"predict expects [B, H, W, 3] uint8 RGB frames, got {frames.shape} {frames.dtype}")
        h, w = frames.shape[1:3]
        x = self._prepare(frames)
        nh, nw = x.shape[-2:]
        cuda = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda):
            out = self.model(x)
            logits = out["pred_logits"] if class_head is None else class_head(out["embeddings"])
        probs = logits.float().softmax(-1)[..., :-1]
        # mask logits cover ceil(nh/4) x ceil(nw/4) cells of 4x4 input pixels: upsample x4, crop, resize
        mh, mw = out["pred_masks"].shape[-2:]
        masks = F.interpolate(out["pred_masks"].float(), size=(4 * mh, 4 * mw), mode="bilinear", align_corners=False)
        dets = []
        for b in range(len(frames)):
            m = F.interpolate(masks[b : b + 1, :, :nh, :nw], size=(h, w), mode="bilinear", align_corners=False)[0]
            dets.append(FrameDetections(embeddings=out["embeddings"][b].float().cpu(), class_probs=probs[b].cpu(),
                                        scores=probs[b].max(-1).values.cpu(), masks=(m.sigmoid() > 0.5).cpu()))
        return dets
