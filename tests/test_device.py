"""The one parser of device values (``uvis.features.device``): names, torchrun's LOCAL_RANK, clear errors."""

from __future__ import annotations

import pytest
import torch

from uvis.errors import UserError
from uvis.features.device import autocast_dtype, choose_device


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_is_the_cpu_without_cuda(no_gpu, monkeypatch):
    assert choose_device() == torch.device("cpu")
    assert choose_device(None) == torch.device("cpu")
    assert choose_device("auto") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun on a CPU machine: still the CPU
    assert choose_device("auto") == torch.device("cpu")


def test_auto_is_cuda_and_the_gpu_of_local_rank_under_torchrun(two_gpus, monkeypatch):
    assert choose_device("auto") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert choose_device("auto") == torch.device("cuda", 1)
    assert choose_device(None) == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "5")  # more processes than GPUs on this machine: the default GPU
    assert choose_device("auto") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "x")
    assert choose_device("auto") == torch.device("cuda")


def test_explicit_names(two_gpus):
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(" cpu ") == torch.device("cpu")
    assert choose_device("cuda") == torch.device("cuda")
    assert choose_device("cuda:1") == torch.device("cuda", 1)
    assert choose_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", "cuda:-1x"])
def test_unknown_values_name_the_parameter(no_gpu, spec):
    with pytest.raises(UserError, match=f"unknown device='{spec}'.*fix: use device=auto, cpu, cuda or cuda:N") as e:
        choose_device(spec)
    assert e.value.param == "device"
    with pytest.raises(UserError, match=f"unknown gpu='{spec}'") as e:
        choose_device(spec, parameter="gpu")
    assert e.value.param == "gpu"


def test_cuda_asked_for_but_absent(no_gpu):
    for spec in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(UserError, match="no CUDA device is visible.*use device=cpu or auto"):
            choose_device(spec)


def test_a_gpu_index_beyond_the_visible_ones(two_gpus):
    with pytest.raises(UserError, match=r"no GPU 'cuda:2': 2 visible.*N < 2"):
        choose_device("cuda:2")


def test_devices_uvis_does_not_run_on(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # even where torch has it
    for spec in ("meta", "mps", "xpu"):
        with pytest.raises(UserError, match=f"device={spec}: uvis runs on a CPU or a CUDA GPU only"):
            choose_device(spec)


def test_autocast_dtype(monkeypatch):
    assert autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(torch.device("cuda", 1)) == torch.float16
