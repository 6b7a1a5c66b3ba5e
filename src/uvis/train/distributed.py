"""Process-group set-up from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False
    grouped: bool = False  # in a process group (launched by torchrun, even as its only process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.grouped or self.world_size > 1


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU); a no-op for a plain process.

    Under torchrun a single process joins a group of one too, so ``torchrun --nproc-per-node 1`` runs the same
    DDP / nccl code as a multi-GPU job (and checks it on a one-GPU machine).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        here = True
    return DistInfo(rank=rank, world_size=world, local_rank=local, initialized_here=here, grouped=True)


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
