"""The stage-1 docs list every flag their commands take, and every flag gets a help text."""

from __future__ import annotations

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
        if not flags:
            continue
        assert any(f in text for f in flags), f"{doc} does not mention {flags[0]}"
        assert action.help, f"uvis {command} {flags[0]} has no help text"
