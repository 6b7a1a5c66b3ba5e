"""Running one command in every process of a torchrun job, on one machine or several.

``torchrun --nproc-per-node N -m uvis COMMAND ...`` starts N processes per machine; each reads RANK, WORLD_SIZE
and LOCAL_RANK from the environment, joins torch's process group (nccl on GPUs, gloo on CPUs) and takes the GPU
of its LOCAL_RANK. ``Group`` is what the collection runners (pseudo-label, name, segment), ``uvis run`` and
training see of the job:

- ``share(weights)``: this process's part of a list of videos, balanced by their frame counts (every process
  computes the same split from the same list);
- ``barrier()``: every process waits for all the others, through the job's torch.distributed store. While it
  waits it watches the others: a process that recorded a failure, or whose heartbeat stopped (killed, crashed,
  its machine gone: ``dead_after_s``), or that made no progress for ``stall_after_s``, stops the wait with one
  line naming its rank, the video it was on and the reason;
- ``task(what)``: names the video in flight, for the error line of a failure inside it (any failure of a process
  is recorded for the others to report, by ``job()``);
- ``progress(...)``: one progress display for the whole job, on rank 0, counting every process's frames (a bar on
  a terminal, a log line at a fixed interval otherwise: ``uvis.data.progress``);
- ``broadcast`` / ``gather``: rank 0's value to all, everyone's values to all (torch's object collectives);
- ``check_shared(folder)``: every process sees the same output folder (several machines need a shared one).

A plain process gets ``Group.solo()``: a job of one, where all of this costs nothing. torchrun stops the other
processes (SIGTERM) when one exits with an error; they then exit with the failed process's line too.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from uvis.errors import UserError
from uvis.features.device import choose_device

T = TypeVar("T")


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


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU); a no-op for a plain process.

    Under torchrun a single process joins a group of one too, so ``torchrun --nproc-per-node 1`` runs the same
    DDP / nccl code as a multi-GPU job (and checks it on a one-GPU machine). A group made earlier in the
    process (by ``uvis run``, before training) is joined as it is.
    """
    if not under_torchrun():
        return DistInfo()
    world = int(os.environ.get("WORLD_SIZE", "1"))
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


@dataclass(frozen=True)
class DistConfig:
    """How processes watch each other while they wait (seconds)."""

    heartbeat_s: float = 2.0
    dead_after_s: float = 60.0  # no heartbeat for this long: the process is gone
    stall_after_s: float = 3600.0  # alive but no frame done for this long while others wait: stuck
    poll_s: float = 0.2

    @classmethod
    def from_env(cls) -> DistConfig:
        """``UVIS_DIST_DEAD_AFTER`` / ``UVIS_DIST_STALL_AFTER`` override the defaults (seconds)."""
        values: dict[str, float] = {}
        for key, name in (("dead_after_s", "UVIS_DIST_DEAD_AFTER"), ("stall_after_s", "UVIS_DIST_STALL_AFTER")):
            if name in os.environ:
                try:
                    values[key] = float(os.environ[name])
                except ValueError:
                    raise UserError(f"{name}={os.environ[name]!r} is not a number of seconds",
                                    fix=f"set {name} to seconds, e.g. 120") from None
        return cls(**values)


class JobFailed(UserError):
    """Another process of the job failed (or this one did): the one line says which, on what and why."""


class _Terminated(BaseException):
    """SIGTERM from the launcher: another process exited with an error."""


def balanced_shares(weights: list[int], count: int) -> list[list[int]]:
    """Indices of ``weights`` split into ``count`` lists of near-equal total weight (largest first, each to the
    lightest list; ties to the lower index), each list in ascending order. The same on every process."""
    loads = [0] * count
    shares: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        target = min(range(count), key=lambda r: (loads[r], r))
        shares[target].append(i)
        loads[target] += max(int(weights[i]), 1)
    return [sorted(s) for s in shares]


class Group:
    """The processes of one job, as the collection runners see them (see the module docstring)."""

    def __init__(self, info: DistInfo, store: Any = None, config: DistConfig | None = None):
        self.info = info
        self.config = config or DistConfig()
        self._store = store
        self._barriers = 0
        self._bars = 0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._old_sigterm: Any = None
        self.host = socket.gethostname()

    # ------------------------------------------------------------------------------------------ basics
    @classmethod
    def solo(cls) -> Group:
        return cls(DistInfo())

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def device(self, name: str | None) -> str | None:
        """A ``--device`` value for this process: under torchrun ``auto``/``cuda`` is the GPU of LOCAL_RANK, a
        fixed ``cuda:N`` is refused (every process would take the same GPU); otherwise unchanged."""
        if not self.enabled or (name is not None and not str(name).startswith(("cuda", "auto"))):
            return name
        if name not in (None, "auto", "cuda"):
            raise UserError(f"device={name} under torchrun", param="device",
                            fix="use device=cuda or auto: each process takes the GPU of its LOCAL_RANK")
        if name == "cuda" or choose_device("auto").type == "cuda":
            return f"cuda:{self.info.local_rank}"
        return name

    def share(self, weights: list[int]) -> list[int]:
        """The indices (ascending) of the items this process does, balanced by ``weights`` (frame counts)."""
        if not self.enabled:
            return list(range(len(weights)))
        return balanced_shares(weights, self.world_size)[self.rank]

    # ------------------------------------------------------------------------------------- collectives
    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        self.barrier()  # a failed or dead process is reported here rather than hanging the collective
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        self.barrier()
        dist.all_gather_object(out, obj)
        return out

    def barrier(self, bar: Any = None) -> None:
        """Wait until every process is here; fail with one line if one failed, died or stalled meanwhile."""
        if not self.enabled:
            return
        self._barriers += 1
        key = f"barrier/{self._barriers}"
        self._store.set(f"{key}/{self.rank}", "1")
        others = [r for r in range(self.world_size) if r != self.rank]
        seen = {r: (self._count(f"alive/{r}"), self._count(f"progress/{r}"), time.monotonic(), time.monotonic())
                for r in others}
        while True:
            self._raise_if_failed()
            waiting = [r for r in others if not self._store.check([f"{key}/{r}"])]
            if not waiting:
                return
            now = time.monotonic()
            for r in waiting:
                alive, done, alive_t, done_t = seen[r]
                a, d = self._count(f"alive/{r}"), self._count(f"progress/{r}")
                alive_t = now if a != alive else alive_t
                done_t = now if d != done else done_t
                seen[r] = (a, d, alive_t, done_t)
                if self._gone(r):
                    raise self._record(r, "stopped without a word (killed or crashed)")
                if now - alive_t > self.config.dead_after_s:
                    raise self._record(r, f"stopped without a word: no heartbeat for {now - alive_t:.0f} s "
                                          "(killed, crashed or its machine went down)")
                if now - done_t > self.config.stall_after_s:
                    raise self._record(r, f"made no progress for {now - done_t:.0f} s while the others waited "
                                          "(stuck; UVIS_DIST_STALL_AFTER sets how long to wait)")
            if bar is not None:
                bar.refresh_job()
            time.sleep(self.config.poll_s)

    # --------------------------------------------------------------------------------- failures, tasks
    @contextmanager
    def task(self, what: str) -> Iterator[None]:
        """Work on ``what`` (e.g. ``video cat``): a failure inside names it in the job's one-line error."""
        if not self.enabled:
            yield
            return
        self._raise_if_failed()
        self._store.set(f"current/{self.rank}", what)
        yield
        self._store.set(f"current/{self.rank}", "")

    def _label(self, rank: int) -> str:
        host = self._get(f"host/{rank}")
        what = self._get(f"current/{rank}")
        where = f"rank {rank} of {self.world_size}" + (f" (on {host})" if host and host != self.host else "")
        return where + (f", {what}" if what else "")

    def _record(self, rank: int, reason: str) -> JobFailed:
        line = f"{self._label(rank)}: {reason}"
        n = int(self._store.add("failures", 1))
        self._store.set(f"failure/{n}", line)
        return JobFailed(line)

    def _first_failure(self) -> str | None:
        if not self._store.check(["failure/1"]):
            return None
        return self._store.get("failure/1").decode(errors="replace")

    def _raise_if_failed(self) -> None:
        line = self._first_failure()
        if line is not None:
            raise JobFailed(line)

    def _gone(self, rank: int) -> bool:
        """A process on this machine whose pid no longer exists."""
        if self._get(f"host/{rank}") != self.host:
            return False
        try:
            os.kill(int(self._get(f"pid/{rank}") or 0), 0)
        except ProcessLookupError:
            return True
        except (OSError, ValueError):
            return False
        return False

    def _count(self, key: str) -> int:
        return int(self._store.add(key, 0))

    def _get(self, key: str) -> str:
        return self._store.get(key).decode(errors="replace") if self._store.check([key]) else ""

    def terminated(self) -> JobFailed:
        """The error for a SIGTERM from the launcher (another process exited): the failure a process recorded,
        or else the process that is gone from this machine or whose heartbeat stopped."""
        start = time.monotonic()
        beats = {r: self._count(f"alive/{r}") for r in range(self.world_size) if r != self.rank}
        while time.monotonic() - start < 4 * self.config.heartbeat_s:
            line = self._first_failure()
            if line is not None:
                return JobFailed(line)
            for r in beats:
                if self._gone(r):
                    return self._record(r, "stopped without a word (killed or crashed)")
            time.sleep(self.config.poll_s)
        for r, count in beats.items():
            if self._count(f"alive/{r}") == count:
                return self._record(r, "stopped without a word (killed, crashed or its machine went down)")
        return JobFailed(f"rank {self.rank} of {self.world_size}: stopped by the launcher")

    # ------------------------------------------------------------------------------------- shared disk
    def check_shared(self, folder: str | Path) -> None:
        """Every process must see ``folder`` as rank 0 does: rank 0 writes a token there and all read it back."""
        if not self.enabled:
            return
        folder = Path(folder)
        token = secrets.token_hex(8) if self.is_main else ""
        probe = folder / f".uvis-shared-{os.environ.get('TORCHELASTIC_RUN_ID', 'job')}"
        if self.is_main:
            from uvis.data import atomic

            atomic.write_with(probe, lambda tmp: tmp.write_text(token))
        token = self.broadcast(token)
        try:
            seen = probe.read_text() == token
        except OSError:
            seen = False
        ok = self.gather(seen)
        if self.is_main:
            probe.unlink(missing_ok=True)
        bad = [r for r, s in enumerate(ok) if not s]
        if bad:
            hosts = ", ".join(f"rank {r} on {self._get(f'host/{r}')}" for r in bad)
            raise JobFailed(f"{hosts} cannot see the output folder rank 0 writes (on {self._get('host/0')})",
                            path=folder, fix="put the output (out=FOLDER) on a file system every machine of the job mounts "
                                             "at the same path (NFS, Lustre, ...)")

    # ------------------------------------------------------------------------------------------- bars
    def progress(self, *, total: int | None, desc: str, unit: str, disable: bool = False) -> JobProgress:
        """One bar for the whole job (rank 0 shows it); ``total`` counts every process's work."""
        self._bars += 1
        return JobProgress(self, f"bar/{self._bars}", total=total, desc=desc, unit=unit, disable=disable)

    def say(self, message: str) -> None:
        """Print a line for the user: rank 0 speaks for the job, the other processes print nothing."""
        if self.is_main:
            print(message)

    # ------------------------------------------------------------------------------------- lifecycle
    def _start(self) -> None:
        s = self._store
        s.set(f"host/{self.rank}", self.host)
        s.set(f"pid/{self.rank}", str(os.getpid()))
        s.add(f"alive/{self.rank}", 1)

        def beat() -> None:
            while not self._stop.wait(self.config.heartbeat_s):
                try:
                    s.add(f"alive/{self.rank}", 1)
                except Exception:  # the store went away with the job
                    return

        self._beat = threading.Thread(target=beat, name="uvis-heartbeat", daemon=True)
        self._beat.start()

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise _Terminated()

        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def _finish(self) -> None:
        self._stop.set()
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)


class JobProgress:
    """The job's one progress display, on rank 0 (``uvis.data.progress``: a tqdm bar on a terminal, timed log
    lines otherwise), whose count is the whole job's; other processes only add to that count."""

    def __init__(self, group: Group, key: str, *, total: int | None, desc: str, unit: str, disable: bool):
        from uvis.data.progress import progress

        self.group, self.key = group, key
        self.bar = progress(total, desc, unit, enabled=not disable and group.is_main)

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            if exc_type is None:
                self.group.barrier(self)  # everyone finished: the display reaches the job's total
                self.refresh_job()
        finally:
            self.bar.close()

    def update(self, n: int) -> None:
        g = self.group
        if not g.enabled:
            self.bar.update(n)
            return
        g._store.add(f"progress/{g.rank}", int(n))
        g._store.add(self.key, int(n))
        if g.is_main:
            self.refresh_job()

    def refresh_job(self) -> None:
        """Rank 0: bring the display to the job's count (every process's work so far)."""
        g = self.group
        if g.enabled and g.is_main:
            behind = g._count(self.key) - self.bar.n
            if behind > 0:
                self.bar.update(behind)

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def write(self, text: str) -> None:
        self.bar.write(text)


@contextmanager
def job(device: str | None = None) -> Iterator[Group]:
    """The job this process belongs to: under torchrun, join the process group (nccl when ``device`` resolves
    to CUDA, else gloo) and watch the others; a plain process gets ``Group.solo()``.

    On leaving, the group made here is destroyed. A SIGTERM from the launcher (another process failed) becomes
    that process's one-line error.
    """
    if not under_torchrun():
        yield Group.solo()
        return
    probe = choose_device(None if device in (None, "auto") else ("cuda" if str(device).startswith("cuda") else device))
    info = init_from_env(probe.type)
    from torch.distributed.distributed_c10d import _get_default_store

    group = Group(info, dist.PrefixStore("uvis/", _get_default_store()), DistConfig.from_env())
    group._start()
    try:
        yield group
    except _Terminated:
        raise group.terminated() from None
    except JobFailed:
        raise
    except UserError as e:
        failed = group._record(group.rank, str(e))
        failed.param = e.param  # the CLI names it as its flag
        raise failed from None
    except Exception as e:
        group._record(group.rank, f"{type(e).__name__}: {e}")
        raise
    finally:
        group._finish()
        cleanup(info)
