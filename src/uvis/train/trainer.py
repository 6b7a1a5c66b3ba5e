"""The training loop: AdamW + warm-up/poly schedule, AMP, gradient clipping, DDP, exact resume.

A checkpoint (``RUN_DIR/checkpoint.pt``, written atomically every ``checkpoint_every`` steps and at the end)
holds the model, optimizer, scheduler and grad-scaler states, the step, every rank's python/numpy/torch RNG
states and the data-order parameters; the data order itself is a pure function of (seed, step), see
``StepBatchSampler``. Resuming therefore reproduces the uninterrupted run's next losses exactly.
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from uvis import distributed
from uvis.data.progress import progress as progress_reporter
from uvis.data.workers import end_with_parent
from uvis.errors import UserError
from uvis.features.device import autocast_dtype, choose_device
from uvis.features.weights import check_needs
from uvis.jobs import Change, check_settings
from uvis.model.loss import SetCriterion
from uvis.model.model import build_model
from uvis.pseudo.format import PseudoLabels, load_pseudo_labels
from uvis.pseudo.name_labels import embeddings_path, load_embeddings
from uvis.train.config import TrainConfig
from uvis.train.dataset import FrameDataset, StepBatchSampler, collate, resolve_frame_paths, vocabulary_of
from uvis.train.run_folder import RunFolder

LOSS_KEYS = ("loss", "loss_ce", "loss_mask", "loss_dice")
# The settings a resumed run may take from the caller instead of the run's stored config (the one may-change list
# of a resume, from the Python API and ``uvis train --resume`` alike); any other one given with another value is
# refused. The step count may extend the run; the rest are paths (the folder may have moved) and operational.
RESUME_OVERRIDES = ("steps", "device", "num_workers", "checkpoint_every", "log_every", "data", "pseudo", "out")
# Set by the run itself (from its vocabulary and CLIP embeddings), never by the caller.
_DERIVED = ("model.num_classes", "model.clip_dim")


def check_resume(stored: TrainConfig, current: TrainConfig, folder: RunFolder, *,
                 message: Callable[[list[Change]], str] | None = None) -> None:
    """Refuse to resume ``folder``'s run with ``current`` settings that differ from its ``stored`` ones outside
    ``RESUME_OVERRIDES`` (one line naming every changed setting, old -> new)."""
    check_settings(stored.to_json(), current.to_json(), may_change=RESUME_OVERRIDES + _DERIVED,
                   what="the run to resume was made", folder=folder.config_path, message=message,
                   fix="pass the run's own values or leave them out (only the step count, paths and operational "
                       "settings may change), or train a new run in another output folder (out=RUN_DIR)")


class WarmupPoly:
    """lr factor: linear warm-up from ``start`` to 1 over ``warmup`` steps, then (1 - progress) ** power."""

    def __init__(self, total: int, warmup: int, power: float, start: float = 0.01):
        self.total, self.warmup, self.power, self.start = total, warmup, power, start

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start + (1 - self.start) * step / self.warmup
        return max(0.0, 1 - step / max(1, self.total)) ** self.power


def pick_device(name: str, local_rank: int = 0, *, distributed_run: bool = False) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` (under torchrun: the GPU of the process's local rank) or ``cuda:N``, checked by
    ``uvis.features.device.choose_device``; training runs on a CPU or CUDA only."""
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise UserError(f"unknown device={name!r}", fix="use device=auto, cpu, cuda or cuda:N", param="device")
    dev = choose_device(name)
    if dev.type != "cuda":
        return dev
    if name == "auto" or dev.index is None:
        return torch.device("cuda", local_rank)
    if distributed_run:
        raise UserError(f"device={name} under torchrun", param="device",
                        fix="use device=cuda: each process takes the GPU of its LOCAL_RANK")
    return dev


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":  # bf16 where the GPU has it, else fp16 (with the grad scaler), off on CPU
        return autocast_dtype(device)
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def _nan_unless_finite(params) -> torch.Tensor:
    """[1] tensor on the parameters' device: 0 when every parameter is finite, else NaN (no host sync)."""
    ok = torch.stack([torch.isfinite(p.detach()).all() for p in params]).all()
    return torch.where(ok, 0.0, float("nan")).reshape(1)


@contextmanager
def _step_boundary_interrupts(active: bool) -> Iterator[Callable[[], bool]]:
    """While active, a first Ctrl-C only raises a flag, so the step in flight finishes and the trainer can save a
    consistent checkpoint before stopping; a second Ctrl-C stops at once. (Single process, main thread only:
    under DDP every rank would have to agree on the step, so there an interruption loses the steps since the
    last checkpoint, as before.)"""
    if not active or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # started with Ctrl-C ignored (e.g. in the background): leave it so
        yield lambda: False
        return
    hit: list[bool] = []

    def note(signum: int, frame: Any) -> None:
        hit.append(True)
        signal.signal(signal.SIGINT, previous)  # the next Ctrl-C interrupts immediately

    signal.signal(signal.SIGINT, note)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Data-loader workers leave Ctrl-C to the training process, which finishes its step and checkpoints; a
    worker killed by it (the default where workers are spawned, not forked) would break that step's batch.
    A worker also ends with the training process, however that ends (even SIGKILL): no orphans."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent()


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def optimization_step(model: torch.nn.Module, criterion: SetCriterion, optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                      images: torch.Tensor, targets: list[dict], *, device: torch.device, amp: torch.dtype | None,
                      clip_grad: float) -> dict[str, torch.Tensor]:
    """One step: forward under autocast, set loss in float32, backward, clip, AdamW step, schedule step."""
    model.train()
    images = images.to(device, non_blocking=True)
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        outputs = model(images)
    losses = criterion(outputs, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["loss"]).backward()
    scaler.unscale_(optimizer)
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return {k: v.detach() for k, v in losses.items()}


def clip_info(pseudo: PseudoLabels, embeddings_file: Path, dim: int) -> dict[str, Any]:
    """What inference needs to embed class names with the CLIP that made the training embeddings.

    Taken from the naming settings of the pseudo file (``info["naming"]``); files named before those
    settings recorded the pretrained tag or logit scale get the ``uvis name`` defaults (openai; CLIP's 100).
    """
    naming = pseudo.info.get("naming") or {}
    return {"model_name": naming.get("clip_model") or "ViT-B-32",
            "pretrained_tag": naming.get("clip_pretrained") or "openai",
            "weights": naming.get("clip_weights"),
            "templates": (naming.get("naming") or {}).get("templates", "imagenet80"),
            "logit_scale": float(naming.get("logit_scale") or 100.0),
            "dim": dim, "embeddings": str(embeddings_file)}


def read_train_config(run: RunFolder) -> TrainConfig:
    """The run's stored ``TrainConfig``; one line naming the file when it is missing or damaged."""
    data = run.read_config()
    try:
        return TrainConfig.from_json(data)
    except (TypeError, ValueError, AttributeError, KeyError):
        raise UserError("not a training config", path=run.config_path,
                        fix="restore it, or start a new run with another out=RUN_DIR") from None


class Trainer:
    """One process's share of a training run (``run()`` drives it; ``train_step`` is one optimisation step)."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True):
        config = copy.deepcopy(config)  # the caller's object stays as given
        out = Path(config.out)
        if not config.out:
            raise UserError("no output folder", fix="pass out=RUN_DIR", param="out")
        self.run_folder = run = RunFolder(out, "out")
        resumed = resume and run.exists()
        if resumed:
            stored = read_train_config(run)
            check_resume(stored, config, run)
            for k in RESUME_OVERRIDES:
                setattr(stored, k, getattr(config, k))
            config = stored
        elif run.checkpoint.exists():
            raise UserError("the run folder already holds a checkpoint", path=out,
                            fix="pass resume=True to continue it, or a new out=RUN_DIR")
        else:
            config.model.clip_dim = None  # a new run takes it from the embeddings file, if any
        config.check()  # numbers (a stored config.json may have been edited) before any data or model is loaded
        if config.amp not in ("auto", "bf16", "fp16", "off"):
            raise UserError(f"unknown amp mode '{config.amp}'", fix="use auto, bf16, fp16 or off")
        self.config, self.out, self.progress = config, out, progress
        check_needs(config.weights_needed())  # the backbone's weights file, before the data is read
        probe = pick_device(config.device)
        self.dist = distributed.init_from_env(probe.type)
        self.device = pick_device(config.device, self.dist.local_rank, distributed_run=self.dist.enabled)
        self.amp_dtype = amp_dtype(config.amp, self.device)

        pseudo = load_pseudo_labels(config.pseudo)
        self.vocabulary = vocabulary_of(pseudo)
        config.model.num_classes = len(self.vocabulary)
        embeddings, self.clip_info = self._clip_embeddings(config, pseudo, resumed=resumed)
        self.dataset = FrameDataset.from_pseudo(
            pseudo, resolve_frame_paths(config.data, pseudo), min_score=config.min_score, embeddings=embeddings,
            skip_empty_frames=config.skip_empty_frames, image_size=tuple(config.image_size),
            scale_range=tuple(config.scale_range), hflip=config.hflip, min_area=config.min_area,
            copy_paste_prob=config.copy_paste_prob, seed=config.seed)

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        model = build_model(config.model, init=config.init, backbone_weights=config.backbone_weights).to(self.device)
        self.model = model
        self.ddp = (DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
                    if self.dist.enabled else model)
        self.criterion = SetCriterion(config.model.num_classes, config.loss).to(self.device)
        self.optimizer = torch.optim.AdamW(model.param_groups(config.lr, config.backbone_lr_mult, config.weight_decay),
                                           lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupPoly(config.steps, config.warmup_steps, config.poly_power))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        # Per-rank randomness (point sampling in the loss); data randomness is keyed by (seed, step) instead.
        random.seed(config.seed + self.dist.rank)
        np.random.seed(config.seed + self.dist.rank)
        torch.manual_seed(config.seed + 1000 + self.dist.rank)
        self.step = 0
        self.saved_step: int | None = None  # the step of the checkpoint on disk
        if resume and run.has_checkpoint():
            self._load(run.checkpoint)
        elif self.dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            run.write_config(config.to_json())
            run.write_vocabulary(self.vocabulary)
            if self.clip_info is not None:
                run.write_clip(self.clip_info)
        self.sampler = StepBatchSampler(len(self.dataset), config.batch_size, seed=config.seed, rank=self.dist.rank,
                                        world_size=self.dist.world_size, start_step=self.step)

    @staticmethod
    def _clip_embeddings(config: TrainConfig, pseudo: PseudoLabels, *, resumed: bool
                         ) -> tuple[dict[int, np.ndarray] | None, dict[str, Any] | None]:
        """The CLIP embeddings to distil (and sets ``config.model.clip_dim``), or (None, None).

        A new run uses the file beside the pseudo-labels when there is one (and ``clip_distill``); a resumed
        run keeps the head it was started with (none when its stored config has no ``clip_dim``).
        """
        path = embeddings_path(config.pseudo)
        had_head = config.model.clip_dim is not None  # a resumed run's stored config
        if resumed and not had_head:
            return None, None
        if not (config.clip_distill and path.is_file()):
            if had_head:
                raise UserError("this run was trained with CLIP embeddings, but they are gone", path=path,
                                fix="put the embeddings file back beside the pseudo-label file, or start a new run")
            return None, None
        embeddings = load_embeddings(path)
        if not embeddings:
            raise UserError("the CLIP embeddings file is empty", path=path,
                            fix="rerun `uvis name`, or train without it (delete it or set clip_distill off)")
        dim = len(next(iter(embeddings.values())))
        if had_head and config.model.clip_dim != dim:
            raise UserError(f"CLIP embeddings are {dim}-d but the run's head is {config.model.clip_dim}-d", path=path,
                            fix="resume with the embeddings it was started with, or start a new run")
        config.model.clip_dim = dim
        return embeddings, clip_info(pseudo, path, dim)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self) -> dict[str, Any] | None:
        rng = _rng_state()
        if self.dist.enabled:
            states: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        if not self.dist.is_main:
            return None
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
                "rng": states, "data_order": self.sampler.state(), "config": self.config.to_json()}

    def save_checkpoint(self) -> None:
        state = self._checkpoint_state()  # a collective: every rank takes part
        if state is not None:
            self.run_folder.write_checkpoint(lambda p: torch.save(state, p))
        self.saved_step = self.step

    def _load(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise UserError(f"cannot read checkpoint ({type(e).__name__})", path=path,
                            fix="delete it to restart the run from scratch") from None
        order = state.get("data_order", {})
        if order.get("world_size", 1) != self.dist.world_size or order.get("batch_size") != self.config.batch_size:
            raise UserError(f"checkpoint was written by {order.get('world_size')} processes with batch size "
                            f"{order.get('batch_size')}", path=path, fix="resume with the same process count and batch size")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # LambdaLR restores its WarmupPoly's fields too: the schedule must end at this run's (maybe extended)
        # step count, not the stored one. For an unchanged count this recomputes the same learning rates.
        for fn in self.scheduler.lr_lambdas:
            fn.total = self.config.steps
        for group, base, fn in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas,
                                   strict=True):
            group["lr"] = base * fn(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        self.scaler.load_state_dict(state["scaler"])
        self.step = self.saved_step = int(state["step"])
        _set_rng_state(state["rng"][self.dist.rank])

    # ------------------------------------------------------------------ training
    def train_step(self, images: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        losses = optimization_step(self.ddp, self.criterion, self.optimizer, self.scheduler, self.scaler, images,
                                   targets, device=self.device, amp=self.amp_dtype, clip_grad=self.config.clip_grad)
        self.step += 1
        return losses

    def _loader(self) -> torch.utils.data.DataLoader:
        # Own generator: creating the loader must not draw from the global torch RNG (exact resume).
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, num_workers=self.config.num_workers, collate_fn=collate,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(self.config.seed),
            persistent_workers=False, worker_init_fn=_ignore_ctrl_c if self.config.num_workers else None)

    def _metrics_writer(self):
        path = self.run_folder.metrics_path
        self.run_folder.keep_metrics_until(self.step)  # lines past the checkpoint we resume from are recomputed
        tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(self.out / "tensorboard"))
        except ImportError:
            pass
        return path.open("a", encoding="utf-8"), tb

    def run(self, *, stop_after: int | None = None) -> Path:
        """Train to ``config.steps`` (or stop after step ``stop_after``, as an interruption would)."""
        cfg = self.config
        end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
        log, tb = self._metrics_writer() if self.dist.is_main else (None, None)
        bar = progress_reporter(cfg.steps, "train", "step", initial=self.step,
                                enabled=self.progress and self.dist.is_main)
        t0, n0 = time.perf_counter(), self.step
        try:
            with _step_boundary_interrupts(not self.dist.enabled) as interrupted:
                batches = iter(self._loader())
                while self.step < end:
                    images, targets = next(batches)
                    losses = self.train_step(images, targets)
                    bar.update(1)
                    log_now = self.step % cfg.log_every == 0 or self.step == end
                    save_now = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                    if log_now or save_now:
                        keys = LOSS_KEYS + (("loss_clip",) if "loss_clip" in losses else ())
                        vals = torch.stack([losses[k] for k in keys])
                        if save_now:  # a checkpoint must hold finite weights: checked in the same reduction
                            vals = torch.cat([vals, _nan_unless_finite(self.model.parameters())])
                        if self.dist.enabled:  # the mean is NaN/inf on every rank when it is on one: all stop together
                            dist.all_reduce(vals)
                            vals /= self.dist.world_size
                        if self.device.type == "cuda":
                            torch.cuda.synchronize(self.device)
                        host = vals.tolist()
                        if not all(math.isfinite(v) for v in host):
                            raise self._diverged()
                    if log_now:
                        rate = (self.step - n0) / max(1e-9, time.perf_counter() - t0)
                        rec = {"step": self.step, **dict(zip(keys, host[: len(keys)], strict=True)),
                               "lr": max(g["lr"] for g in self.optimizer.param_groups), "it_s": rate}
                        if log is not None:
                            log.write(json.dumps(rec) + "\n")
                            log.flush()
                            bar.set_postfix(loss=f"{rec['loss']:.3f}")
                            if tb is not None:
                                for k, v in rec.items():
                                    if k != "step":
                                        tb.add_scalar(f"train/{k}", v, self.step)
                    if save_now:
                        self.save_checkpoint()
                    if interrupted():
                        if not save_now:  # the run resumes from this step, not from the last periodic save
                            if not math.isfinite(_nan_unless_finite(self.model.parameters()).item()):
                                raise self._diverged()
                            self.save_checkpoint()
                        raise KeyboardInterrupt
                if self.step >= cfg.steps and self.dist.is_main:
                    self.run_folder.write_final_weights(lambda p: torch.save({"model": self.model.state_dict()}, p))
        finally:
            bar.close()
            if log is not None:
                log.close()
            if tb is not None:
                tb.close()
        return self.out

    def _diverged(self) -> UserError:
        """The error that stops a run whose loss (or weights) became NaN/inf; earlier outputs stay as they are."""
        kept = (f"the last checkpoint (step {self.saved_step}) is kept in {self.run_folder.checkpoint.name}" if self.saved_step is not None
                else "no checkpoint was written before it")
        return UserError(f"training diverged: the loss or weights became NaN/inf by step {self.step} "
                         f"(checked every {self.config.log_every} steps and at checkpoints); {kept}", path=self.out,
                         fix="start a new out=RUN_DIR with a lower lr= (e.g. half) and check the pseudo-labels "
                             "(resuming with the same settings diverges again)")

    def close(self) -> None:
        distributed.cleanup(self.dist)


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Train a VIS model on pseudo-labels; returns the run folder (config.json, vocabulary.json, checkpoints,
    and clip.json when CLIP embeddings beside the pseudo file gave the model a CLIP head).

    With ``resume``, an existing ``RUN_DIR/checkpoint.pt`` is continued under the run's stored config (only
    the fields in ``RESUME_OVERRIDES`` come from ``config``). Under torchrun each process calls this.
    """
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        return trainer.run(stop_after=stop_after)
    finally:
        trainer.close()
