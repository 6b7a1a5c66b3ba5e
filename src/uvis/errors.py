"""One error type for mistakes a user can fix.

The CLI prints a ``UserError`` as a single line and exits with status 2; anything
else is a bug and keeps its traceback.

Library code speaks of parameters, never of command-line flags: ``param`` names the Python parameter or config
field the error is about, and a fix refers to a parameter as ``name=VALUE`` (``"pass dino_weights=PATH"``). The
CLI renders both as the command's flags (``--dino-weights PATH``; see ``uvis.cli.flags``).
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, phrased as: what, where, and how to fix it."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None,
                 param: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.fix = fix
        self.param = param  # the parameter / config field the error is about (None: the input as a whole)
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))


class WeightsNotFoundError(UserError):
    """Pretrained weights could be neither found locally nor downloaded."""
