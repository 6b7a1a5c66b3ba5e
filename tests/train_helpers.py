"""Shared set-up for the training tests: a small synthetic dataset and its ground truth as pseudo-labels."""

from __future__ import annotations

from pathlib import Path

from uvis.data.synthetic import make_dataset
from uvis.data.ytvis import Dataset
from uvis.train import TrainConfig, pseudo_labels_from_dataset


def synthetic_pseudo(root: Path, *, keep_categories: bool = False, num_videos: int = 2, num_frames: int = 6
                     ) -> tuple[Dataset, Path]:
    dataset = make_dataset(root / "data", num_videos=num_videos, num_frames=num_frames, height=64, width=96,
                           num_objects=3, seed=0)
    pseudo = root / ("pseudo_named.json" if keep_categories else "pseudo.json")
    pseudo_labels_from_dataset(dataset, keep_categories=keep_categories).save(pseudo)
    return dataset, pseudo


def tiny_config(root: Path, pseudo: Path, out: str, **kw) -> TrainConfig:
    return TrainConfig.preset_config("tiny", data=str(root / "data"), pseudo=str(pseudo), out=str(root / out),
                                     device="cpu", **kw)


def ddp_worker(rank: int, world: int, port: int, root: str, pseudo: str, steps: int) -> None:
    """One process of a CPU/gloo DDP run: train, then dump this rank's parameters, gradients and first batch."""
    import os

    import torch

    from uvis.train.trainer import Trainer

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    trainer = Trainer(tiny_config(Path(root), Path(pseudo), "run_ddp", steps=steps, log_every=1, batch_size=2),
                      progress=False)
    try:
        first = trainer.sampler.batch(0)
        trainer.run()
        torch.save({"params": {k: v.detach().clone() for k, v in trainer.model.named_parameters()},
                    "grads": {k: v.grad.clone() for k, v in trainer.model.named_parameters() if v.grad is not None},
                    "first_batch": first, "world": trainer.dist.world_size},
                   Path(root) / f"rank{rank}.pt")
    finally:
        trainer.close()
