"""The command line's one table of flag spellings, its renamed flags, and library errors shown as flags.

Library code names Python parameters and config fields (``UserError(param="dino_weights", fix="pass
dino_weights=PATH")``); only here do they become flags. Every idea has one spelling in every command
(``docs/flags.md``). ``render_error`` writes an error as the command's flags: ``dino_weights=PATH`` becomes
``--dino-weights PATH``, ``track_memory=False`` becomes ``--no-track-memory``, for the flags the command has.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from typing import Any

from uvis.errors import UserError

# parameter / config field -> the flag that sets it. Several parameters may share a flag (RunConfig.train_steps
# and TrainConfig.steps are both --steps); ``backbone`` is MaskCut's DINO (RunConfig, PseudoLabelConfig), while
# ``model.backbone`` is the VIS model's backbone (TrainConfig.model.backbone).
FLAGS: dict[str, str] = {
    "out": "--out", "frames": "--frames", "fps": "--fps", "device": "--device", "features": "--features",
    "backbone": "--dino", "dino_weights": "--dino-weights", "motion_weight": "--motion-weight",
    "num_masks": "--num-masks", "resolution": "--resolution",
    "solver": "--solver", "tau": "--tau", "classes": "--classes", "vocabulary": "--vocabulary",
    "clip_model": "--clip-model", "clip_pretrained": "--clip-pretrained", "clip_weights": "--clip-weights",
    "clip_batch_size": "--clip-batch-size", "templates": "--templates", "context": "--context",
    "train_preset": "--preset", "preset": "--preset", "train_steps": "--steps", "steps": "--steps",
    "train_batch_size": "--batch-size", "batch_size": "--batch-size", "lr": "--lr", "init": "--init",
    "model.backbone": "--backbone", "backbone_weights": "--backbone-weights", "image_size": "--image-size",
    "train_videos": "--train-videos", "ablations": "--ablate", "num_workers": "--workers", "workers": "--workers",
    "seed": "--seed", "checkpoint_every": "--checkpoint-every", "clip_weight": "--clip-weight",
    "loss.clip_weight": "--clip-weight", "data": "--data", "model": "--model",
    "min_score": "--min-score", "shard": "--shard", "top_k": "--top-k", "score_threshold": "--score-threshold",
    "similarity_threshold": "--similarity-threshold", "memory": "--memory", "name": "--name",
}
# boolean parameter -> (its switch, the value the switch sets)
SWITCHES: dict[str, tuple[str, bool]] = {
    "pseudo_from_ground_truth": ("--pseudo-from-ground-truth", True), "prototypes": ("--no-prototypes", False),
    "track_memory": ("--no-track-memory", False), "progress": ("--no-progress", False),
    "skip_bad_videos": ("--skip-bad-videos", True), "accept_truncated": ("--accept-truncated", True),
    "resume": ("--resume", True), "overwrite": ("--overwrite", True), "crf": ("--crf", True),
    "clip_distill": ("--no-clip", False), "class_agnostic": ("--class-agnostic", True),
}

# ``name=`` not inside a longer word or path; ``=True``/``=False`` kept apart for the switches
_MENTION = re.compile(r"(?<![\w.\-=/])([a-z][a-z0-9_.]*[a-z0-9])=(?:(True|False)\b)?")


class _Renamed(argparse.Action):
    """An old spelling of a flag: says its new name on stderr, then acts exactly as the new flag."""

    def __init__(self, option_strings: list[str], dest: str, *, target: argparse.Action, **_: Any):
        super().__init__(option_strings, dest, nargs=target.nargs, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                         metavar=target.metavar)
        self.target = target

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        new = max(self.target.option_strings, key=len)
        print(f"note: {option_string} is now {new}", file=sys.stderr)
        raw = values if isinstance(values, list) else [values]
        self.target(parser, namespace, parser._get_values(self.target, raw), new)  # its type, choices and action


def renamed(container: argparse._ActionsContainer, old: str, new: str) -> None:
    """Keep ``old`` working as ``new`` (already added to ``container``), hidden from --help, with a note."""
    target = container._option_string_actions[new]
    container.add_argument(old, action=_Renamed, dest=target.dest, target=target)


def flag_for(param: str, options: set[str]) -> str | None:
    """The flag of ``param`` when the command has it (a switch: the switch), else None."""
    flag = FLAGS.get(param) or SWITCHES.get(param, ("", False))[0]
    return flag if flag in options else None


def command_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings a command shows in its --help (those of its sub-commands included)."""
    return {s for a in _actions(parser) if a.help is not argparse.SUPPRESS for s in a.option_strings}


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def render_error(error: UserError, options: set[str]) -> str:
    """The error's one line with its parameters written as the flags of a command (its ``command_options``).

    ``name=VALUE`` becomes ``--flag VALUE`` and ``name=True/False`` the switch that sets it, for the flags the
    command has (others stay as parameters). An error about a parameter (``param``) that the text does not name
    as a flag starts with that flag."""
    def spell(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if value is not None and name in SWITCHES and SWITCHES[name][0] in options:
            flag, sets = SWITCHES[name]
            if (value == "True") == sets:
                return flag
        flag = FLAGS.get(name)
        if flag is None or flag not in options:
            return match.group(0)
        rest = match.string[match.end():match.end() + 1]
        if value is None and (not rest or rest.isspace() or rest in ",;:)"):
            return flag  # the parameter itself ("check num_masks="), no value
        return f"{flag} {value or ''}"

    text = _MENTION.sub(spell, str(error))
    flag = flag_for(error.param, options) if error.param else None
    if flag is not None and not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
        text = f"{flag}: {text}"
    return text
