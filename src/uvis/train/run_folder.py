"""The layout of a trained run: one home for the names of the files ``uvis train`` writes and the models read.

::

    RUN_DIR/config.json        the run's TrainConfig (``uvis.train.config``)
    RUN_DIR/vocabulary.json    [{"id", "name"}] of the classes the model was trained on
    RUN_DIR/checkpoint.pt      the last checkpoint (model, optimizer, ..., every rank's RNG): resumes the run
    RUN_DIR/model_final.pt     the weights at the last step (what a finished run is used with)
    RUN_DIR/clip.json          which CLIP the head was distilled from (runs trained with CLIP embeddings only)
    RUN_DIR/metrics.jsonl      one line per logged step (step, losses, lr, it/s)
    RUN_DIR/weights.json       in a ``uvis run`` folder: every pretrained file the run used, with its sha256

A ``uvis run`` folder holds its trained model in ``3-model/`` (``PIPELINE_MODEL_FOLDER``): ``RunFolder.find``
accepts either folder. Reads of a folder that is not a run raise one ``UserError`` naming the parameter the folder
came from (``model``, ``run_dir``), the missing or damaged file and the fix. Writes are atomic
(``uvis.data.atomic``). No torch at import time: checkpoints are written through a writer function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvis.data import atomic
from uvis.errors import UserError

PIPELINE_MODEL_FOLDER = "3-model"  # where ``uvis run`` trains its model, inside its output folder

CONFIG = "config.json"
VOCABULARY = "vocabulary.json"
CHECKPOINT = "checkpoint.pt"
FINAL_WEIGHTS = "model_final.pt"
CLIP_INFO = "clip.json"
METRICS = "metrics.jsonl"
WEIGHTS_RECORD = "weights.json"


@dataclass(frozen=True)
class RunFolder:
    """A training run's folder. ``parameter``: what the user called it (named in errors: ``model``, ``run_dir``)."""

    path: Path
    parameter: str = "run_dir"
    fix: str = "pass the output folder of uvis train (or of uvis run)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def find(cls, path: str | Path, parameter: str = "model") -> RunFolder:
        """The run at ``path``: a ``uvis train`` folder, or the trained model of a ``uvis run`` folder."""
        path = Path(path)
        inner = path / PIPELINE_MODEL_FOLDER
        if not (path / CONFIG).is_file() and (inner / CONFIG).is_file():
            path = inner
        return cls(path, parameter)

    # ------------------------------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def vocabulary_path(self) -> Path:
        return self.path / VOCABULARY

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint (what ``--resume`` continues)."""
        return self.path / CHECKPOINT

    @property
    def final_weights(self) -> Path:
        return self.path / FINAL_WEIGHTS

    @property
    def clip_path(self) -> Path:
        return self.path / CLIP_INFO

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def weights_record_path(self) -> Path:
        return self.path / WEIGHTS_RECORD

    def exists(self) -> bool:
        """Whether the folder holds a run (its ``config.json``)."""
        return self.config_path.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def weights(self) -> Path | None:
        """The weights a model is loaded from: the final ones, else the last checkpoint; None before training."""
        return next((p for p in (self.final_weights, self.checkpoint) if p.is_file()), None)

    def require_weights(self) -> Path:
        weights = self.weights()
        if weights is None:
            raise UserError(f"{self.parameter} has no weights yet ({FINAL_WEIGHTS} and {CHECKPOINT} are missing)",
                            path=self.path, fix="train it (or resume it) to the end")
        return weights

    def weights_id(self) -> dict[str, str]:
        """Which weights these are, ``{"file", "sha256"}``: what results made with them record."""
        from uvis.features.weights import provenance

        return provenance(self.require_weights())

    # ------------------------------------------------------------------------------------------ reads
    def require(self, *names: str) -> None:
        """One error naming the first of ``names`` (default: config and vocabulary) missing from the folder."""
        for name in names or (CONFIG, VOCABULARY):
            if not (self.path / name).is_file():
                if not self.path.is_dir():
                    raise UserError(f"{self.parameter} folder not found (no training run there)", path=self.path,
                                    fix=self.fix, param=self.parameter)
                raise UserError(f"{self.parameter} is not a training run folder ({name} is missing)", path=self.path,
                                fix=self.fix, param=self.parameter)

    def _read_json(self, name: str) -> Any:
        self.require(name)
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UserError(f"the run's {name} is damaged ({type(e).__name__})", path=self.path / name,
                            fix="restore it, or train the run again with another out=RUN_DIR") from None

    def read_config(self) -> dict[str, Any]:
        """The run's stored training config (``TrainConfig.from_json`` takes it)."""
        config = self._read_json(CONFIG)
        if not isinstance(config, dict):
            raise UserError("the run's config.json is not a training config", path=self.config_path,
                            fix="restore it, or train the run again with another out=RUN_DIR")
        return config

    def read_vocabulary(self) -> list[tuple[int, str]]:
        """The classes the model was trained on: (id, name) in the model's order."""
        data = self._read_json(VOCABULARY)
        try:
            return [(int(c["id"]), str(c["name"])) for c in data]
        except (TypeError, KeyError, ValueError):
            raise UserError("the run's vocabulary.json is not a list of {id, name}", path=self.vocabulary_path,
                            fix="restore it, or train the run again with another out=RUN_DIR") from None

    def read_clip(self) -> dict[str, Any] | None:
        """Which CLIP the head was distilled from; None for a run without a CLIP head."""
        if not self.clip_path.is_file():
            return None
        info = self._read_json(CLIP_INFO)
        if not isinstance(info, dict):
            raise UserError("the run's clip.json is not a table", path=self.clip_path,
                            fix="restore it, or train the run again with another out=RUN_DIR")
        return info

    def read_metrics(self) -> list[dict[str, Any]]:
        """The logged training steps; a blank or torn line (a crash while it was appended) is left out."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            if logged_step(line) is not None:
                records.append(json.loads(line))
        return records

    def read_weights_record(self) -> dict[str, Any]:
        """``weights.json`` of a ``uvis run`` folder: role -> {"file", "sha256", "path"}; {} when there is none."""
        if not self.weights_record_path.is_file():
            return {}
        record = self._read_json(WEIGHTS_RECORD)
        return record if isinstance(record, dict) else {}

    # ----------------------------------------------------------------------------------------- writes
    def write_config(self, config: dict[str, Any]) -> None:
        atomic.write_json(self.config_path, config, indent=2)

    def write_vocabulary(self, vocabulary: list[tuple[int, str]]) -> None:
        atomic.write_json(self.vocabulary_path, [{"id": i, "name": n} for i, n in vocabulary], indent=2)

    def write_clip(self, info: dict[str, Any]) -> None:
        atomic.write_json(self.clip_path, info, indent=2)

    def write_weights_record(self, record: dict[str, Any]) -> None:
        atomic.write_json(self.weights_record_path, record, indent=2)

    def write_checkpoint(self, writer: Callable[[Path], None]) -> None:
        """``writer(tmp)`` saves the checkpoint (``torch.save``); it replaces the last one once complete."""
        atomic.write_with(self.checkpoint, writer)

    def write_final_weights(self, writer: Callable[[Path], None]) -> None:
        atomic.write_with(self.final_weights, writer)

    def keep_metrics_until(self, step: int) -> None:
        """Drop logged steps past ``step`` (a resumed run logs them again)."""
        if self.metrics_path.exists():
            keep = [ln for ln in self.metrics_path.read_text(encoding="utf-8").splitlines()
                    if (n := logged_step(ln)) is not None and n <= step]
            atomic.write_with(self.metrics_path, lambda p: p.write_text("".join(ln + "\n" for ln in keep)))


def logged_step(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a blank or torn one (a crash while it was appended)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
