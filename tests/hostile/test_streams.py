"""Standard streams and killed writers, in real processes: a full or closed stdout, a reader that stops early, and
the temporary file a SIGKILL leaves behind in the middle of an atomic write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from uvis.data.atomic import check_output_location, remove_orphans

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _uvis(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uvis", *args], env=ENV, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_full_stdout_is_one_line_exit_2(corpus):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "uvis", "eval", str(corpus.gt), str(corpus.results)], env=ENV,
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "No space left on device" in lines[0] and "Traceback" not in proc.stderr


def test_reader_that_stops_early_is_a_quiet_exit(corpus):
    proc = subprocess.Popen([sys.executable, "-m", "uvis", "eval", str(corpus.gt), str(corpus.results)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: gone before uvis writes its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""


def test_closed_stdout_and_stderr_still_do_the_work(corpus, tmp_path):
    """Closed descriptors are reopened on /dev/null: the outputs opened later cannot take them over."""
    out = tmp_path / "out"
    script = f"{sys.executable} -m uvis import-davis {corpus.davis} --out {out / 'davis.json'} >&- 2>&-; echo $?"
    done = subprocess.run(["sh", "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "0", done
    assert json.loads((out / "davis.json").read_text())["videos"]  # a complete file, not the printed lines


def test_sigkill_in_an_atomic_write_leaves_an_orphan_the_next_run_removes(tmp_path):
    out = tmp_path / "out"
    writer = textwrap.dedent(f"""
        import os, signal
        from uvis.data.atomic import atomic_path
        with atomic_path({str(out / 'videos' / 'v.json')!r}) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", writer], env=ENV, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    orphans = list((out / "videos").glob(".*.tmp"))
    assert len(orphans) == 1 and not (out / "videos" / "v.json").exists()
    # a write in flight in a live process (this one) is not an orphan
    live = out / "videos" / orphans[0].name.replace(orphans[0].name.split(".")[-3], f"{orphans[0].name.split('.')[-3].split('-')[0]}-{os.getpid()}")
    live.write_text("in flight")
    check_output_location(out)  # what every command runs on its --out first
    assert not orphans[0].exists() and live.exists()
    live.unlink()
    assert remove_orphans(out) == []
