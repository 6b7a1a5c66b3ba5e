"""The CPU time estimate printed before MaskCut jobs, and its advice to pick a faster backbone."""

from __future__ import annotations

import pytest

from uvis.features.backbones import VITS
from uvis.features.dino import cpu_seconds_per_frame, cpu_speed_note, matmul_rate, vit_flops


def test_cost_grows_with_patches_and_width():
    flops = {n: vit_flops(VITS[n], 480) for n in ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8")}
    assert flops["dino_vits16"] < flops["dino_vitb16"] < flops["dino_vitb8"]
    assert flops["dino_vits16"] < flops["dino_vits8"] < flops["dino_vitb8"]
    assert flops["dino_vitb8"] > 15 * flops["dino_vits16"]
    assert vit_flops(VITS["dino_vitb8"], 480) > 3 * vit_flops(VITS["dino_vitb8"], 240)


def test_estimate_uses_the_measured_rate():
    assert matmul_rate(65, 64) > 0
    slow = cpu_seconds_per_frame("dino_vitb8", 480, rate=1e9)
    assert cpu_seconds_per_frame("dino_vitb8", 480, rate=2e9) == pytest.approx(slow / 2)


def test_a_long_job_gets_a_faster_backbone_suggested():
    rate = 30e9  # flop/s: about what a 2-core machine reaches
    note = cpu_speed_note("dino_vitb8", 480, 141, rate=rate)
    assert note.startswith("on the CPU, dino_vitb8 at 480 px takes about ")
    assert "141 frames: about " in note and "--backbone dino_vits16 is about 20x faster" in note
    short = cpu_speed_note("dino_vits16", 480, 2, rate=rate)
    assert "2 frames: about" in short and "faster" not in short and "GPU" not in short
    longest = cpu_speed_note("dino_vits16", 480, 100_000, rate=rate)
    assert "Use a GPU (--device cuda)" in longest
    assert cpu_speed_note("dino_resnet50", 480, 10, rate=rate) == ""
