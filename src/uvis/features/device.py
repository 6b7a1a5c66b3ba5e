"""Which device a step runs on: the one parser of every ``device`` / ``--device`` value, and its autocast type.

Accepted: ``auto`` (or None), ``cpu``, ``cuda`` and ``cuda:N``. ``auto`` takes the GPU of the process's
``LOCAL_RANK`` under torchrun when CUDA is there, else the (first) CUDA GPU, else the CPU. An unknown value, a
device torch knows but uvis is not built or tested for (``mps``, ``xpu``, ``meta``), or a GPU that is not there,
is a one-line ``UserError`` naming the parameter.
"""

from __future__ import annotations

import os

import torch

from uvis.errors import UserError


def _local_rank() -> int | None:
    """torchrun's ``LOCAL_RANK`` of this process; None outside torchrun (or when it is not a number)."""
    text = os.environ.get("LOCAL_RANK", "").strip()
    return int(text) if text.isdigit() else None


def choose_device(spec: str | torch.device | None = "auto", *, parameter: str = "device") -> torch.device:
    """The ``torch.device`` of a device value (see the module's text); ``parameter`` is the parameter the error
    names (the CLI shows it as its ``--device`` flag)."""
    if spec is None or str(spec).strip() == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = _local_rank()
        if rank is not None and rank < torch.cuda.device_count():
            return torch.device("cuda", rank)
        return torch.device("cuda")
    use = f"use {parameter}=auto, cpu, cuda or cuda:N"
    try:
        dev = torch.device(spec.strip() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"unknown {parameter}={str(spec)!r}", fix=use, param=parameter) from None
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta ...: torch knows them, uvis does not run on them
        raise UserError(f"{parameter}={spec}: uvis runs on a CPU or a CUDA GPU only", fix=use, param=parameter)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{parameter}={spec} but no CUDA device is visible", fix=f"use {parameter}=cpu or auto",
                        param=parameter)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"no GPU '{spec}': {torch.cuda.device_count()} visible",
                        fix=f"use {parameter}=cuda:N with N < {torch.cuda.device_count()}, or cuda", param=parameter)
    return dev


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 on older GPUs, none on CPU (fp32 there is faster and exact)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
