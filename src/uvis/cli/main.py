"""The ``uvis`` command: one sub-command per pipeline step.

Each sub-command lives in its own module under ``uvis.cli`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed arguments and returning
an exit code. A ``UserError`` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from uvis import __version__
from uvis.errors import UserError

COMMANDS: list[str] = [
    "uvis.cli.run",
    "uvis.cli.demo",
    "uvis.cli.pseudo_label",
    "uvis.cli.name",
    "uvis.cli.train",
    "uvis.cli.segment",
    "uvis.cli.eval",
    "uvis.cli.import_davis",
    "uvis.cli.export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uvis", description="Unsupervised video instance segmentation.")
    parser.add_argument("--version", action="version", version=f"uvis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _tolerant_output() -> None:
    """Paths that are not valid UTF-8 (decoded with surrogate escapes) print escaped instead of crashing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a stream that cannot be reconfigured stays as it is
                reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"uvis {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uvis {args.command}: interrupted; finished outputs are kept, rerun to resume", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        where = "GPU" if "cuda" in str(e).lower() or type(e).__name__ == "OutOfMemoryError" else "host"
        print(f"uvis {args.command}: error: out of {where} memory — fix: lower --batch-size (or the input size: "
              "--resolution, --image-size), or use a larger machine; finished outputs are kept, rerun to resume",
              file=sys.stderr)
        return 2


def is_out_of_memory(error: BaseException) -> bool:
    """True for host and device out-of-memory errors (torch raises them as RuntimeError subclasses)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


if __name__ == "__main__":
    raise SystemExit(main())
