"""Training configuration: one typed dataclass, stored as ``RUN_DIR/config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from uvis.data.validate import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, finite_number
from uvis.data.workers import max_workers
from uvis.errors import UserError
from uvis.model.config import ModelConfig
from uvis.model.loss import LossConfig

if TYPE_CHECKING:
    from uvis.features.weights import Need


@dataclass
class TrainConfig:
    """Everything a training run depends on (paths, model, loss, optimisation, data, logging).

    data: what ``uvis.data.sources.discover`` accepts (dataset folder/JSON, folder of frame folders), or the
        frame root the pseudo file's ``videos[].file_names`` are relative to.
    pseudo: the pseudo-label file (``uvis.pseudo.format``). Class-aware when it has categories.
    image_size: (height, width) of training crops; frames are first scaled to fit it, times a random
        factor in ``scale_range``. Inference fits frames into the same size.
    lr / weight_decay / backbone_lr_mult / clip_grad: AdamW as Mask2Former (1e-4, 0.05, 0.1, full-model
        gradient norm clipped to 0.01 — AdamW is invariant to that global scale, it only tames spikes).
    copy_paste_prob: chance that a training frame gets a random subset of another frame's pseudo-instances
        pasted on top (CutLER-style copy-paste; it adds objects in new contexts and occlusions).
    warmup_steps / poly_power: linear warm-up from 1% of the lr, then polynomial decay to 0.
    amp: "auto" (bf16 autocast on CUDA, fp16 with a gradient scaler on GPUs without bf16, off on CPU), "bf16",
        "fp16" (with a gradient scaler) or "off".
    clip_distill: when the pseudo file has CLIP embeddings beside it (``NAME.embeddings.npz``, written by
        ``uvis name``), give the model a CLIP head (``model.clip_dim`` from the file) and distil the embeddings
        into it (``loss.clip_weight``); the trained model is then open-vocabulary. On by default: the head is
        a small MLP and the loss costs little; without the file nothing changes.
    """

    data: str = ""
    pseudo: str = ""
    out: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    preset: str = "default"
    steps: int = 20000
    batch_size: int = 8  # per process
    lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_lr_mult: float = 0.1
    warmup_steps: int = 250
    poly_power: float = 0.9
    clip_grad: float = 0.01
    amp: str = "auto"
    device: str = "auto"
    init: str = "dino"
    backbone_weights: str | None = None
    image_size: tuple[int, int] = (360, 640)
    scale_range: tuple[float, float] = (0.75, 1.5)
    hflip: bool = True
    copy_paste_prob: float = 0.5
    min_score: float = 0.0
    min_area: int = 4
    skip_empty_frames: bool = True
    num_workers: int = 4
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 20
    clip_distill: bool = True

    def weights_needed(self) -> list[Need]:
        """The pretrained file the model's backbone is initialised from (none with ``init="random"``)."""
        if self.init != "dino":
            return []
        from uvis.features.backbones import backbone_entry, backbone_need
        from uvis.model.backbone import VITS

        name = self.model.backbone
        if name in VITS:  # a DINO ViT (the test-size one has no file: its loader says so)
            return [backbone_need(name, self.backbone_weights, "backbone_weights", "the model's backbone initialisation")
                    ] if backbone_entry(name).weights is not None else []
        return [backbone_need("dino_resnet50", self.backbone_weights)]

    @staticmethod
    def preset_config(name: str, num_classes: int = 1, **overrides: Any) -> TrainConfig:
        """``default`` (R-50, 360x640 crops) or ``tiny`` (test model, 64x96 crops, random init, few steps)."""
        model = ModelConfig.preset(name, num_classes)
        if name == "tiny":
            base = TrainConfig(model=model, loss=LossConfig(num_points=256), preset=name, steps=300, batch_size=4,
                               lr=1e-3, warmup_steps=10, clip_grad=1.0, init="random", image_size=(64, 96),
                               scale_range=(0.9, 1.1), copy_paste_prob=0.0, num_workers=0, checkpoint_every=100, log_every=10)
        else:
            base = TrainConfig(model=model, preset=name)
        for k, v in overrides.items():
            if v is not None:
                setattr(base, k, v)
        return base

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """One-line errors for settings no run can train with (before any data or model is loaded): ``lr``
        inf, a NaN loss weight, crops of 0x0 ... Also bounds ``num_workers`` by this machine's CPUs."""
        where = f"{self.out}/config.json" if self.out else None
        for name, value, allowed in (
            ("lr", self.lr, POSITIVE), ("steps", self.steps, AT_LEAST_ONE), ("batch_size", self.batch_size, AT_LEAST_ONE),
            ("checkpoint_every", self.checkpoint_every, AT_LEAST_ONE), ("log_every", self.log_every, AT_LEAST_ONE),
            ("weight_decay", self.weight_decay, NON_NEGATIVE), ("clip_grad", self.clip_grad, NON_NEGATIVE),
            ("warmup_steps", self.warmup_steps, NON_NEGATIVE), ("num_workers", self.num_workers, NON_NEGATIVE),
            ("loss.clip_weight", self.loss.clip_weight, NON_NEGATIVE),
        ):
            finite_number(value, name, path=where, allowed=allowed,
                          fix=f"set {name}= to a number {allowed.describe()}", param=name)
        size = self.image_size
        if not (isinstance(size, (tuple, list)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 8192 for v in size)):
            raise UserError(f"image_size {list(size) if isinstance(size, tuple) else size!r} is not [height, width] "
                            "of 32..8192 pixels", path=where, fix="set image_size to e.g. [360, 640]", param="image_size")
        self.num_workers = min(int(self.num_workers), max_workers())

    @staticmethod
    def from_json(d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(TrainConfig)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["model"] = ModelConfig.from_json(d.get("model", {}))
        loss_known = {f.name for f in fields(LossConfig)}
        kw["loss"] = LossConfig(**{k: v for k, v in d.get("loss", {}).items() if k in loss_known})
        for k in ("image_size", "scale_range"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return TrainConfig(**kw)
