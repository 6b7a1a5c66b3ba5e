"""Worker processes: how many are worth starting on this machine, and ending them with their parent."""

from __future__ import annotations

import os
import signal
import sys

from uvis.errors import UserError


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """The most data-loading processes worth starting here: one per CPU (never fewer than 2 allowed)."""
    return max(2, cpu_count())


def check_workers(workers: int, param: str = "workers") -> int:
    if workers < 0 or workers > max_workers():
        raise UserError(f"{param}={workers}: this machine has {cpu_count()} CPU(s)",
                        fix=f"pass {param}= between 0 and {max_workers()}", param=param)
    return workers


def end_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (elsewhere a no-op): a worker of a process
    killed outright (SIGKILL, out of memory) must not live on."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)
