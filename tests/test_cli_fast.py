"""``uvis --help``, ``uvis CMD --help`` and usage errors import no torch or numpy; renamed flags keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from uvis.cli.main import build_parser, main

SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = r"""
import contextlib, io, sys
from uvis.cli.main import build_parser, main
parser = build_parser()
sub = next(a for a in parser._actions if a.dest == "command")
calls = [["--help"]] + [[c, "--help"] for c in sub.choices]
calls += [["weights", a, "--help"] for a in ("list", "check", "download")]
calls += [["segment", "x", "--model", "none", "--out", "o", "--top-k", "many"], ["run", "x"], ["train", "--bogus"],
          ["segment", "x", "--model", "none", "--out", "o", "--no-such-flag"]]
for argv in calls:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv) if argv[-1] == "--no-such-flag" else parser.parse_args(argv)
        except SystemExit as e:
            code = e.code
    assert code in (0, 2), (argv, code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "scipy", "PIL", "cv2", "av"))
print(heavy[:5])
"""


def test_help_and_usage_errors_import_no_heavy_module():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_help_texts_name_the_librarys_own_values():
    """The help texts spell out a few library values (importing them would import torch): they must agree."""
    from uvis.cli.options import DINO_NAMES, RUN_ABLATIONS, RUN_STEPS
    from uvis.cli.segment import SIMILARITY_THRESHOLD
    from uvis.features.backbones import REAL_VITS, VITS
    from uvis.pipeline import ABLATIONS, STEPS
    from uvis.track.tracker import TrackerConfig

    assert {n: (VITS[n].timm_name, VITS[n].hf_name) for n in REAL_VITS} == DINO_NAMES
    assert RUN_STEPS == STEPS and tuple(ABLATIONS) == RUN_ABLATIONS
    assert TrackerConfig().similarity_threshold == SIMILARITY_THRESHOLD


def _parse(argv: list[str]):  # noqa: ANN202
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(("argv", "dest", "value", "old", "new"), [
    (["segment", "x", "--model", "none", "--out", "o", "--no-memory"], "no_track_memory", True, "--no-memory",
     "--no-track-memory"),
    (["pseudo-label", "x", "--out", "o", "--weights", "w.pth"], "dino_weights", "w.pth", "--weights", "--dino-weights"),
    (["pseudo-label", "x", "--out", "o", "--backbone", "dino_vits16"], "backbone", "dino_vits16", "--backbone", "--dino"),
    (["run", "x", "--out", "o", "--config", "c.toml"], "vocabulary", "c.toml", "--config", "--vocabulary"),
    (["train", "--data", "d", "--pseudo", "p", "--out", "o", "--config", "tiny"], "preset", "tiny", "--config",
     "--preset"),
    (["name", "p.json", "--data", "d", "--out", "o.json", "--batch-size", "4"], "clip_batch_size", 4, "--batch-size",
     "--clip-batch-size"),
    (["weights", "list", "--weights", "w.pth"], "dino_weights", "w.pth", "--weights", "--dino-weights"),
])
def test_old_spellings_work_with_a_note(capsys, argv, dest, value, old, new):
    assert getattr(_parse(argv), dest) == value
    assert capsys.readouterr().err.strip() == f"note: {old} is now {new}"
    new_argv = [new if a == old else a for a in argv]
    assert getattr(_parse(new_argv), dest) == value
    assert capsys.readouterr().err == ""


def test_old_spellings_are_hidden_and_checked_like_the_new_ones(capsys):
    with pytest.raises(SystemExit):
        _parse(["segment", "--help"])
    text = capsys.readouterr().out
    assert "--no-track-memory" in text and "--no-memory" not in text and "--backbone" not in text
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "d", "--pseudo", "p", "--out", "o", "--config", "huge"])
    assert e.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err
    # a value given with the old spelling is range-checked as the new flag
    assert main(["name", "p.json", "--data", "d", "--out", "o.json", "--batch-size", "0"]) == 2
    assert "--clip-batch-size 0 is out of range" in capsys.readouterr().err
