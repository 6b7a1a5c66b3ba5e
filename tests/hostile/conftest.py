"""Shared inputs of the hostile corpus, generated once per session in a temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: oracle_predictor, train_helpers

from hostile_inputs import Corpus, build_corpus  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("hostile"))
