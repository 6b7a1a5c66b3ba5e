"""Library errors name parameters; only the CLI spells them as flags (uvis.cli.flags)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from uvis.cli import main as cli_main
from uvis.cli.flags import command_options, render_error
from uvis.errors import UserError, WeightsNotFoundError

SRC = Path(__file__).resolve().parents[1] / "src" / "uvis"
FLAG = re.compile(r"(?<![\w-])--[a-z]")
# error helpers whose string arguments become an error's message or fix
ERROR_HELPERS = {"finite_number", "missing_weights_error", "unreadable_error", "choose_vocabulary", "read_json",
                 "_read_json", "parse_json_text"}


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _error_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Strings that end up in an error: arguments of ``...Error(...)`` and of error helpers, ``fix=`` arguments,
    and the values of module constants named ``*FIX*``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name.endswith("Error") or name in ERROR_HELPERS:
                found += [(node.lineno, s) for arg in [*node.args, *node.keywords] for s in _strings(arg)]
            else:
                found += [(node.lineno, s) for k in node.keywords if k.arg == "fix" for s in _strings(k.value)]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and "FIX" in t.id for t in node.targets):
            found += [(node.lineno, s) for s in _strings(node.value)]
    return found


def test_library_errors_name_no_flags():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for line, text in _error_texts(ast.parse(path.read_text(encoding="utf-8"))):
            if FLAG.search(text):
                offenders.append(f"{path.relative_to(SRC)}:{line}: {text!r}")
    assert not offenders, "write parameters (name=VALUE), not flags:\n" + "\n".join(offenders)


def _parsers() -> dict[str, object]:
    sub = next(a for a in cli_main.build_parser()._actions if a.dest == "command")
    return dict(sub.choices)


WITH_DINO_WEIGHTS = [c for c, p in _parsers().items() if "--dino-weights" in command_options(p)]


def test_the_dino_weights_flag_is_in_every_command_that_runs_maskcut():
    assert sorted(WITH_DINO_WEIGHTS) == ["pseudo-label", "run", "segment", "weights"]


@pytest.mark.parametrize("command", WITH_DINO_WEIGHTS)
def test_a_parameter_prints_as_the_commands_flag(command):
    parser = _parsers()[command]
    error = WeightsNotFoundError("dino_vitb8_pretrain.pth not found", param="dino_weights",
                                 fix="pass dino_weights=PATH, or set UVIS_WEIGHTS_DIR=FOLDER")
    line = render_error(error, command_options(parser))
    assert "pass --dino-weights PATH" in line and "dino_weights" not in line
    assert "UVIS_WEIGHTS_DIR=FOLDER" in line  # environment variables are not parameters
    # an error about the parameter that does not name it is introduced by its flag
    assert render_error(UserError("file is empty", path="/w/x.pth", param="dino_weights"), command_options(parser)) \
        == "--dino-weights: /w/x.pth: file is empty"


def test_switches_and_flags_the_command_lacks():
    parsers = _parsers()
    error = UserError("settings differ", fix="rerun with track_memory=False or accept_truncated=True")
    assert render_error(error, command_options(parsers["run"])).endswith("rerun with --no-track-memory or --accept-truncated")
    # eval has neither flag: the parameters stay as they are
    assert render_error(error, command_options(parsers["eval"])).endswith("rerun with track_memory=False or accept_truncated=True")
    # a word that only contains a parameter's name is left alone
    assert "/runs/seed=3" in render_error(UserError("x", path="/runs/seed=3"), command_options(parsers["train"]))


def test_the_model_backbone_and_maskcuts_dino_are_two_flags():
    parsers = _parsers()
    assert render_error(UserError("bad", fix="pass model.backbone=resnet50"), command_options(parsers["train"])).endswith(
        "pass --backbone resnet50")
    assert render_error(UserError("bad", fix="pass backbone=dino_vits16"), command_options(parsers["segment"])).endswith(
        "pass --dino dino_vits16")


def test_cli_prints_a_library_error_with_the_flag(monkeypatch, capsys, tmp_path):
    """End to end through ``main``: the command raises a parameter-named error; stderr shows the flag."""
    import uvis.cli.segment as segment

    def fail(args, group):  # noqa: ANN001
        raise WeightsNotFoundError("dino_vits16 weights not found", param="dino_weights",
                                   fix="pass dino_weights=PATH")

    monkeypatch.setattr(segment, "_run", fail)
    code = cli_main.main(["segment", str(tmp_path), "--model", "none", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "uvis segment: error: dino_vits16 weights not found — fix: pass --dino-weights PATH"


@pytest.mark.parametrize("argv", [
    ["pseudo-label", "{data}", "--out", "{out}"],
    ["segment", "{data}", "--model", "none", "--features", "dino", "--out", "{out}"],
    ["run", "{data}", "--out", "{out}", "--features", "dino"],
])
def test_a_missing_dino_file_is_named_by_the_commands_flag(tmp_path, capsys, argv):
    """Through the real library path: the weights lookup names ``dino_weights``; every command shows its flag."""
    import numpy as np
    from PIL import Image

    data = tmp_path / "clip"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / f"{i:05d}.jpg")
    args = [a.format(data=data, out=tmp_path / "out") for a in argv]
    assert cli_main.main([*args, "--dino", "tiny", "--dino-weights", str(tmp_path / "nope.pth")]) == 2
    err = capsys.readouterr().err
    assert "nope.pth" in err and "as --dino-weights PATH" in err and "dino_weights" not in err, err
