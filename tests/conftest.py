"""Every test runs offline: weights downloads go to a closed local port, the Hugging Face hub is offline, and
the torch hub and Hugging Face caches are empty folders of the test's own (nothing reaches the network)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline_weights(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("UVIS_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # the discard port: connection refused
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "huggingface" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.delenv("UVIS_WEIGHTS_DIR", raising=False)
