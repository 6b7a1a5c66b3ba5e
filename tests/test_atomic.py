"""Atomic writes: outputs appear whole or not at all, with the permissions of any other new file."""

from __future__ import annotations

import os
import stat

import pytest

from uvis.data import atomic


def test_outputs_get_the_usual_permissions(tmp_path):
    """A temporary file is private (0600); the finished output must not stay so, or a shared folder of
    pseudo-labels (several machines, one per shard) is unreadable to everyone but its writer."""
    old = os.umask(0o022)
    try:
        atomic.write_json(tmp_path / "a.json", {"x": 1})
        atomic.write_with(tmp_path / "b.bin", lambda p: p.write_bytes(b"1"))
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_failed_write_leaves_nothing(tmp_path):
    def boom(path):
        path.write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic.write_with(tmp_path / "c.json", boom)
    assert list(tmp_path.iterdir()) == []
