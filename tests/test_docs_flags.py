"""The stage-1 docs list every flag their commands take, and every flag gets a help text."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from uvis.cli.main import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize(("command", "doc"), [("pseudo-label", "pseudo-label.md"), ("name", "naming.md")])
def test_every_flag_is_documented_and_explained(command, doc):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    text = (DOCS / doc).read_text()
    for action in sub._actions:
        flags = [s for s in action.option_strings if s.startswith("--") and s != "--help"]
        if not flags or action.help is argparse.SUPPRESS:  # an old spelling, kept working
            continue
        assert any(f in text for f in flags), f"{doc} does not mention {flags[0]}"
        assert action.help, f"uvis {command} {flags[0]} has no help text"


def _commands() -> dict[str, argparse.ArgumentParser]:
    return dict(next(a for a in build_parser()._actions if a.dest == "command").choices)


def _old_spellings() -> dict[str, set[str]]:
    """Old flag spelling -> the commands where it is a hidden, renamed alias."""
    from uvis.cli.flags import _Renamed

    old: dict[str, set[str]] = {}
    for name, parser in _commands().items():
        for action in _all_actions(parser):
            if isinstance(action, _Renamed):
                old.setdefault(action.option_strings[0], set()).add(name)
    return old


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    out = []
    for action in parser._actions:
        out.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _all_actions(sub)
    return out


def _doc_files() -> list[Path]:
    return [DOCS.parent / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_docs_use_the_new_spellings():
    """An old spelling that no command takes any more is refused everywhere in the docs (but in the section on
    renamed flags); one that another command still takes (--backbone in train) on the lines that run a command
    where it is old."""
    commands = _commands()
    valid = {s for p in commands.values() for a in _all_actions(p) if a.help is not argparse.SUPPRESS
             for s in a.option_strings}
    found = []
    for path in _doc_files():
        text = path.read_text()
        if path.name == "flags.md":  # its section on renamed flags names the old spellings on purpose
            text = re.sub(r"\*\*Renamed flags\.\*\*.*?(?=\*\*Errors)", "", text, flags=re.S)
        for number, line in enumerate(text.splitlines(), 1):
            for old, where in _old_spellings().items():
                if not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", line):
                    continue
                runs = [c for c in where if re.search(rf"\buvis {re.escape(c)}\b", line)]
                if old not in valid or runs:
                    found.append(f"{path.name}:{number}: {old}")
    assert not found, "old flag spellings in the docs:\n" + "\n".join(found)


def test_the_flags_table_is_true():
    """Each row of docs/flags.md: the flag exists in every command it lists; each renamed flag works there."""
    commands = _commands()
    options = {name: {s for a in _all_actions(p) for s in a.option_strings} for name, p in commands.items()}
    old = _old_spellings()
    text = (DOCS / "flags.md").read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    for cells in rows:
        flags = re.findall(r"`(--[a-z-]+)", cells[0])
        listed = re.findall(r"`([a-z-]+)", cells[-1])
        if "all but" in cells[-1]:
            listed = [c for c in commands if c not in listed]
        if "positional" in cells[-1]:
            continue
        if len(cells) == 3 and cells[1].startswith("`--"):  # renamed: | old | new | commands |
            assert all(c in old[flags[0]] for c in listed), cells
            continue
        for flag in flags:
            for command in listed:
                assert flag in options[command], f"uvis {command} has no {flag}"
