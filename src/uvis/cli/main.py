"""The ``uvis`` command: one sub-command per pipeline step.

Each sub-command lives in its own module under ``uvis.cli`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed arguments and returning
an exit code. A ``UserError`` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
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
    "uvis.cli.weights",
]


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes (an unknown flag, ``--top-k x``) as one line naming the fix, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} — fix: see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="uvis", description="Unsupervised video instance segmentation.")
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


def _standard_streams() -> None:
    """Standard streams closed by the caller (``uvis ... >&- 2>&-``) are opened onto /dev/null: otherwise the
    next file opened (an output) would take their descriptor and receive what is printed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (lives as long as the process)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of a broken or full stdout cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def _run_checks(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What every command checks before it starts: its numbers, its --device, and its --out location."""
    from uvis.data.atomic import check_output_location
    from uvis.data.validate import check_arguments

    check_arguments(args, _command_parser(parser, args.command))
    device = getattr(args, "device", None)
    if device:
        from uvis.features.device import choose_device

        choose_device(device)
    out = getattr(args, "out", None)
    if out:
        check_output_location(out, file=str(out).lower().endswith(".json"))


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def main(argv: list[str] | None = None) -> int:
    _standard_streams()
    _tolerant_output()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named with the command, as argparse does for every other usage mistake
        where = f"uvis {args.command}" if getattr(args, "command", None) else "uvis"
        print(f"{where}: error: unrecognized arguments: {' '.join(extra)} — fix: see {where} --help", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _run_checks(parser, args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full or closed stdout fails here, inside the handlers, not at exit
        return code
    except UserError as e:
        from uvis.cli.flags import command_options, render_error

        options = command_options(_command_parser(parser, args.command))
        print(f"uvis {args.command}: error: {render_error(e, options)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `uvis eval ... | head -1`: the reader has all it wanted
        _silence_stdout()
        return 141  # what a shell reports for a command ended by SIGPIPE
    except OSError as e:
        from uvis.data.atomic import storage_error

        error = storage_error(e)  # a full disk, a read-only or forbidden folder: the machine's state, not a bug
        if error is None:
            raise
        _silence_stdout()
        print(f"uvis {args.command}: error: {error}; finished outputs are kept, rerun to resume", file=sys.stderr)
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
