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


def test_folder_lock_is_exclusive(tmp_path):
    """A second holder (another open of the lock file, as another shard's process) waits for the first."""
    import threading

    from uvis.data.atomic import folder_lock

    events: list[str] = []
    held, release = threading.Event(), threading.Event()

    def first():
        with folder_lock(tmp_path / "out"):
            events.append("first in")
            held.set()
            release.wait(5)
            events.append("first out")

    t = threading.Thread(target=first)
    t.start()
    held.wait(5)
    def later():
        with folder_lock(tmp_path / "out"):
            events.append("second in")

    second = threading.Thread(target=later)
    second.start()
    second.join(0.3)
    assert events == ["first in"]  # still waiting
    release.set()
    t.join(5)
    second.join(5)
    assert events == ["first in", "first out", "second in"]
