"""One error type for mistakes a user can fix.

The CLI prints a ``UserError`` as a single line and exits with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, phrased as: what, where, and how to fix it."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.path = str(path) if path is not None else None
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))


class WeightsNotFoundError(UserError):
    """Pretrained weights could be neither found locally nor downloaded."""
