"""Per-frame inference with a trained run: frames in, ``FrameDetections`` (what the tracker consumes) out.

Open vocabulary: a run trained with CLIP embeddings (``clip.json`` in the run folder, ``model.clip_dim``
set) has a head mapping each query into CLIP's space. ``with_vocabulary(names)`` embeds the names with the
same CLIP (prompt ensemble, the templates naming used) and gives a predictor classifying queries against them,
so any names work without retraining. A run without the head can only be restricted to the classes it was
trained on.

Loading: ``from_run`` reads the run folder's files (``config.json``, ``vocabulary.json``, ``clip.json``, the
weights); it is the one place that knows that layout here.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from uvis.data.vocabulary import Vocabulary, clean_names
from uvis.errors import UserError
from uvis.features.device import autocast_dtype, choose_device
from uvis.model.config import ModelConfig
from uvis.model.model import VISModel
from uvis.predict.base import Predictor
from uvis.predict.types import FrameDetections
from uvis.train.run_folder import RunFolder

ClassHead = Callable[[torch.Tensor], torch.Tensor]


class TrainedPredictor(Predictor):
    """A trained VIS model applied frame by frame.

    ``predict`` returns, per frame, all Q queries as candidates (or, with ``min_score`` set, only those scoring
    at least that: the others' masks are never upsampled, which is most of the post-processing cost):
    - ``embeddings`` [Q, D]: the final decoder output (after its LayerNorm), the tracker's appearance cue;
    - ``class_probs`` [Q, K]: softmax over the K + 1 logits with the no-object column dropped, so a row sums
      to 1 - p(no object);
    - ``scores`` [Q]: the largest class probability, i.e. the probability of the most likely real class
      (low both when the query sees nothing and when it hesitates between classes);
    - ``masks`` [Q, H, W] bool: mask logits upsampled to the frame size, > 0.

    Vocabulary: ``with_vocabulary(names)`` (what ``uvis segment --classes`` leads to) returns a new predictor
    sharing the model. With a CLIP head
    (``open_vocabulary``) any names: ``class_probs`` = (1 - p(no object)) x softmax(logit_scale x cos(CLIP
    projection of the query, text embedding of each name)), so, as with the trained classifier, a row sums to
    the objectness and ``scores`` is its largest entry; the trained no-object logit keeps deciding *whether*
    a query is an object, CLIP only *which* one. ``with_text_embeddings`` takes text embeddings directly.
    Without the head, names must be trained classes (columns kept, not renormalised; scores unchanged).

    Hook: ``predict(..., class_head=f)`` replaces the classifier by any ``f(embeddings [B, Q, D]) -> logits
    [B, Q, K' + 1]`` (last column = no object) for that call.
    """

    def __init__(self, model: VISModel, vocabulary: Vocabulary, image_size: tuple[int, int],
                 device: torch.device | str | None = None, *, clip_info: dict[str, Any] | None = None,
                 clip_weights: str | Path | None = None, weights_id: dict[str, str] | None = None):
        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.amp_dtype = autocast_dtype(self.device)  # bf16 on GPUs that have it, fp16 on older ones, none on CPU
        self._vocabulary = vocabulary
        self.trained_vocabulary = vocabulary
        self.image_size = tuple(image_size)
        self.clip_info = clip_info or {}  # the run's clip.json: which CLIP made the distilled embeddings
        self.clip_weights = clip_weights  # overrides the weights path recorded in clip.json
        self._columns: list[int] | None = None  # restriction to trained classes
        self._text: torch.Tensor | None = None  # [N, C] unit text embeddings of an open vocabulary
        self._logit_scale = 100.0
        # Which weights these are ({"file", "sha256"}; set by from_run): `uvis segment` records it per video, so
        # a model retrained in the same run folder is not mixed with the old one's results.
        self.weights_id = weights_id

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def fingerprint(self) -> dict[str, Any]:
        return dict(self.weights_id or {})

    @property
    def open_vocabulary(self) -> bool:
        """True when the model has a CLIP head (trained with CLIP embeddings)."""
        return self.model.config.clip_dim is not None

    def with_vocabulary(self, names: Sequence[str]) -> TrainedPredictor:
        """A predictor (same model) reporting these classes: ids 1..N in order with a CLIP head, else the trained
        ids of known names."""
        names = clean_names(names)
        if not self.open_vocabulary:
            new = copy.copy(self)
            new._vocabulary, new._columns = self.trained_vocabulary.restrict(
                names,
                fix="pick classes the model knows, or retrain it with CLIP embeddings (uvis name writes "
                    "NAME.embeddings.npz beside the pseudo-labels; uvis train then adds a CLIP head) for any names")
            new._text = None
            return new
        from uvis.pseudo.clip_model import ClipModel
        from uvis.pseudo.vocabulary import TEMPLATE_SETS, class_embeddings

        vocab = Vocabulary.from_names(names)
        clip = ClipModel.load(self.clip_config())
        if clip.embed_dim != self.model.config.clip_dim:
            raise UserError(f"CLIP {clip.name} embeds in {clip.embed_dim}-d, the model's CLIP head in "
                            f"{self.model.config.clip_dim}-d", path=clip.weights_path,
                            fix="pass the weights of the CLIP the training embeddings were made with as clip_weights=PATH",
                            param="clip_weights")
        templates = TEMPLATE_SETS.get(self.clip_info.get("templates", "imagenet80"), TEMPLATE_SETS["imagenet80"])
        text = class_embeddings(clip, vocab, templates)
        return self.with_text_embeddings(vocab.names, text, self.clip_info.get("logit_scale", clip.logit_scale))

    def clip_config(self):
        """The ``ClipConfig`` of the CLIP the run's embeddings came from (weights: ``clip_weights`` if given)."""
        from uvis.pseudo.clip_model import ClipConfig

        weights = self.clip_weights
        recorded = self.clip_info.get("weights")
        if weights is None and recorded and Path(recorded).exists():
            weights = recorded
        return ClipConfig(model_name=self.clip_info.get("model_name", "ViT-B-32"),
                          pretrained_tag=self.clip_info.get("pretrained_tag", "openai"), weights=weights,
                          device=str(self.device))

    def with_text_embeddings(self, names: Sequence[str], text: torch.Tensor, logit_scale: float = 100.0
                             ) -> TrainedPredictor:
        """A predictor (same model) classifying queries against these [N, clip_dim] text embeddings (one per name;
        normalised here)."""
        if not self.open_vocabulary:
            raise UserError("this model has no CLIP head, so it cannot score text embeddings",
                            fix="retrain it with CLIP embeddings beside the pseudo-labels (uvis name writes them)")
        text = torch.as_tensor(text, dtype=torch.float32)
        if text.ndim != 2 or text.shape != (len(names), self.model.config.clip_dim):
            raise ValueError(f"text embeddings {tuple(text.shape)} for {len(names)} names and a "
                             f"{self.model.config.clip_dim}-d CLIP head")
        new = copy.copy(self)
        new._text = F.normalize(text, dim=-1).to(self.device)
        new._logit_scale = float(logit_scale)
        new._columns = None
        new._vocabulary = Vocabulary.from_names([str(n) for n in names])
        return new

    @staticmethod
    def from_run(run_dir: str | Path, device: torch.device | str | None = None, *,
                 clip_weights: str | Path | None = None) -> TrainedPredictor:
        """Load the config, vocabulary, ``clip.json`` (if any) and the final weights (else the last checkpoint) of a
        ``uvis train`` folder (or of a ``uvis run`` folder's model; ``uvis.train.run_folder.RunFolder`` owns the
        layout). ``clip_weights``: where the CLIP for ``with_vocabulary`` is, if not where training found it."""
        run = RunFolder.find(run_dir, "model")
        run.require()
        config = run.read_config()
        vocab = Vocabulary.from_pairs(run.read_vocabulary())
        clip_info = run.read_clip()
        try:
            mcfg = ModelConfig.from_json(config["model"])
            image_size = tuple(config["image_size"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"the run's config.json is damaged ({type(e).__name__}: {e})", path=run.config_path,
                            fix="pass the output folder of a uvis train run, or train it again", param="model") from None
        weights = run.require_weights()
        mcfg.num_classes = len(vocab)
        model = VISModel(mcfg)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"])
        except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, KeyError, TypeError, AttributeError,
                OSError, zipfile.BadZipFile) as e:  # a file cut short reads as OSError [Errno 22] or a bad zip
            raise UserError(f"cannot load the run's weights ({type(e).__name__}; damaged, or not made with this "
                            "run's config.json)", path=weights, fix="train the run again (or resume it)") from None
        # the sha256 costs ~0.1 s per 100 MB, once per load
        return TrainedPredictor(model, vocab, image_size, device, clip_info=clip_info, clip_weights=clip_weights,
                                weights_id=run.weights_id())

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        """Frames scaled (keeping aspect) to fit ``image_size``, as the training crops were."""
        h, w = frames.shape[1:3]
        th, tw = self.image_size
        scale = min(th / h, tw / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        x = torch.from_numpy(np.array(frames, copy=True)).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
        return F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, next_frame: np.ndarray | None = None, *,
                class_head: ClassHead | None = None) -> list[FrameDetections]:
        """Detections for each of ``frames`` ([B, H, W, 3] or [H, W, 3] uint8 RGB); ``next_frame`` is unused."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"predict expects [B, H, W, 3] uint8 RGB frames, got {frames.shape} {frames.dtype}")
        h, w = frames.shape[1:3]
        x = self._prepare(frames)
        nh, nw = x.shape[-2:]
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            out = self.model(x)
            logits = out["pred_logits"] if class_head is None else class_head(out["embeddings"])
        probs = logits.float().softmax(-1)[..., :-1]
        scores = probs.max(-1).values
        if class_head is None and self._text is not None:
            sims = out["pred_clip"].float() @ self._text.T
            probs = probs.sum(-1, keepdim=True) * (self._logit_scale * sims).softmax(-1)
            scores = probs.max(-1).values
        elif class_head is None and self._columns is not None:
            probs = probs[..., self._columns]  # scores stay those of the full vocabulary
        # mask logits cover ceil(nh/4) x ceil(nw/4) cells of 4x4 input pixels: upsample x4, crop, resize
        mh, mw = out["pred_masks"].shape[-2:]
        keep = scores >= self.min_score if self.min_score is not None else torch.ones_like(scores, dtype=torch.bool)
        # the small per-query tensors cross to the host once per batch; masks once per frame (memory stays bounded)
        keep_h, emb_h = keep.cpu(), out["embeddings"].float().cpu()
        probs_h, scores_h = probs.cpu(), scores.cpu()
        dets = []
        for b in range(len(frames)):
            k = keep_h[b]
            if bool(k.any()):
                m = F.interpolate(out["pred_masks"][b : b + 1, keep[b]].float(), size=(4 * mh, 4 * mw),
                                  mode="bilinear", align_corners=False)
                m = F.interpolate(m[:, :, :nh, :nw], size=(h, w), mode="bilinear", align_corners=False)[0]
            else:  # bilinear interpolation refuses zero channels
                m = torch.zeros(0, h, w, device=scores.device)
            dets.append(FrameDetections(embeddings=emb_h[b, k], class_probs=probs_h[b, k], scores=scores_h[b, k],
                                        masks=(m > 0).cpu()))
        return dets
