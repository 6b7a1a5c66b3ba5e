"""Atomic file writes: a crash or Ctrl-C never leaves a half-written output behind.

A write goes to a hidden temporary file beside its target, ``.<name>.<host>-<pid>.<random>.tmp``, renamed onto
the target once complete. One killed outright (SIGKILL, power loss) leaves that file behind: ``remove_orphans``
(run on every command's output folder by ``check_output_location``) deletes those whose writer is gone — a
process of this machine that no longer runs, or a file untouched for a day (a writer on another machine).

``check_output_location`` is the one check of an output path before any work: not a file where a folder is
needed (or the reverse), writable, and with free space. ``storage_error`` turns the write errors that are the
machine's state (a full disk, a read-only folder) into one-line ``UserError`` messages.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from uvis.errors import UserError

MIN_FREE_BYTES = 16 * 2**20  # below this, a command would fail at its first outputs: refuse it before starting
ORPHAN_AGE_S = 24 * 3600  # a temporary file of another machine's writer is an orphan after this long
_NAME_KEEP = 80  # characters of the target's name kept in a temporary name (it must fit the name limit too)
_TMP_RE = re.compile(r"^\..*\.([0-9a-f]{8})-(\d+)\.[^.]+\.tmp$")

STORAGE_FIXES = {  # errno -> how to fix it
    errno.ENOSPC: "free disk space, or write the output (out=FOLDER) on a disk with room",
    errno.EDQUOT: "free space within your disk quota, or write the output (out=FOLDER) elsewhere",
    errno.EFBIG: "write the output (out=FOLDER) on a file system that allows larger files",
    errno.EROFS: "write the output (out=FOLDER) on a writable disk",
    errno.EACCES: "check the permissions, or write the output (out=FOLDER) in a folder you may write",
    errno.EPERM: "check the permissions, or write the output (out=FOLDER) in a folder you may write",
    errno.ENAMETOOLONG: "use shorter file or folder names",
    errno.EIO: "check the disk (it reported an input/output error)",
}
# torch.save reports a failed write as a RuntimeError whose text has one of these
_TORCH_WRITE_FAILURES = ("file write failed", "unexpected pos", "enforce fail")


def storage_error(error: BaseException, path: str | Path | None = None) -> UserError | None:
    """A one-line ``UserError`` for a write that failed because of the disk or the folder (full, read-only,
    forbidden); None for any other error (a bug keeps its traceback)."""
    if isinstance(error, OSError) and error.errno in STORAGE_FIXES:
        where = path if path is not None else error.filename
        return UserError(f"cannot write ({os.strerror(error.errno)})", path=where, fix=STORAGE_FIXES[error.errno])
    if isinstance(error, RuntimeError) and any(s in str(error) for s in _TORCH_WRITE_FAILURES):
        where = Path(path).parent if path is not None else None
        free = _free_bytes(where) if where is not None else None
        reason = "the disk is full" if free is not None and free < MIN_FREE_BYTES else "the write failed"
        return UserError(f"cannot write ({reason})", path=path, fix=STORAGE_FIXES[errno.ENOSPC])
    return None


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name[:_NAME_KEEP]}.{_host_tag()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphan(tmp: Path) -> bool:
    """Delete ``tmp`` if it is the temporary file of an atomic write whose writer is gone; True if deleted."""
    m = _TMP_RE.match(tmp.name)
    if m is None:
        return False
    try:
        if m.group(1) == _host_tag():
            gone = not _pid_alive(int(m.group(2)))
        else:
            gone = time.time() - tmp.stat().st_mtime > ORPHAN_AGE_S
        if gone:
            tmp.unlink()
        return gone
    except OSError:  # gone already, or not ours to remove
        return False


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes under ``folder`` whose writer is gone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [Path(root) / name for root, _dirs, files in os.walk(folder) for name in files
            if name.endswith(".tmp") and remove_orphan(Path(root) / name)]


def check_output_location(path: str | Path, *, file: bool = False, need_bytes: int = 0) -> Path:
    """Check an output before any work: a folder (``file``: a file) can be made at ``path``, its disk is writable
    and has ``need_bytes`` (and at least ``MIN_FREE_BYTES``) free; leftovers of interrupted writes are removed.

    Nothing is created: a command that fails later leaves no empty output folder behind.
    """
    path = Path(path)
    if file and path.is_dir():
        raise UserError("output path is a folder", path=path, fix="name an output file, e.g. out.json")
    if not file and path.exists() and not path.is_dir():
        raise UserError("output folder is an existing file", path=path, fix="pass a folder (new or existing) as out=FOLDER", param="out")
    folder = path.parent if file else path
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create the output: {existing} is a file", path=path,
                        fix="choose an output path inside a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(Path("write-check")), suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise (storage_error(e, existing) or UserError(f"cannot write there ({e.strerror or e})", path=existing,
                                                       fix="choose a writable output folder")) from None
    free = _free_bytes(existing)
    need = max(need_bytes, MIN_FREE_BYTES)
    if free is not None and free < need:
        raise UserError(f"only {free / 2**20:.1f} MiB free on the output's disk, {need / 2**20:.1f} MiB needed",
                        path=existing, fix=STORAGE_FIXES[errno.ENOSPC])
    if not file:
        remove_orphans(path)
    elif path.parent.is_dir():
        for tmp in path.parent.glob(f".{glob.escape(path.name[:_NAME_KEEP])}.*.tmp"):
            remove_orphan(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise UserError("output path is a folder", path=path, fix="name an output file, e.g. out.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise UserError("cannot create the output: a parent of it is a file", path=path,
                        fix="choose an output path inside a folder") from None
    except OSError as e:
        raise (storage_error(e, path) or UserError(f"cannot write the output ({e.strerror or e})", path=path,
                                                   fix="choose a writable output folder")) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600; the output gets a new file's usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as e:  # a full disk mid-write: one line, and no partial file
        error = storage_error(e, path)
        if error is None:
            raise
        raise error from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any, *, indent: int | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent))


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file) for the block.

    Shards writing into one folder each add their own per-video files, then rebuild the folder's merged
    outputs from all of them; under this lock the last shard to finish always rebuilds from every file, so a
    slower, earlier rebuild cannot overwrite a complete one. Uses ``flock`` (POSIX; also over NFSv4); where
    that is unavailable the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
