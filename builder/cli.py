"""``cropmark``: the command line. Parses arguments, calls :mod:`builder`, prints.

Known errors (:class:`~builder.errors.CropmarkError`, and OS errors such as a
folder that cannot be written) are printed as one line and exit with status 2;
``--debug`` shows the traceback instead. ``--debug`` and ``--quiet`` are accepted
anywhere before a ``--``, before or after the command. A standard output whose reader
went away (``| head -1``) ends the command silently with status 141. A closed standard
stream (``>&-``) is given ``/dev/null``, so no file the command opens takes its number.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from builder.errors import CropmarkError


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ...``) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    """``cropmark``'s parser: the global flags, then each package's subcommands, in pipeline order."""
    from builder.collect import commands as collect_commands
    from builder.hub import commands as hub_commands
    from builder.model import commands as model_commands
    from builder.quality import commands as quality_commands
    from builder.release import commands as release_commands
    from builder.testing import commands as testing_commands

    top = _Parser(
        prog="cropmark",
        description="Build, audit and publish the Cropmark Disambiguator S2 release; "
        "train and evaluate its model.",
        epilog="Run 'cropmark COMMAND --help' for the options of a command. Known errors are one line "
        "on standard error with exit status 2.",
    )
    top.add_argument("--version", action="version", version=f"cropmark {_version()}")
    top.add_argument(
        "--debug", action="store_true", help="show tracebacks (accepted before or after the command)"
    )
    top.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (accepted before or after the command); bars show only on a terminal",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    release_commands.register(sub)
    hub_commands.register_card(sub)  # listed in the order of the pipeline: build, audit, card, ...
    for package in (quality_commands, model_commands, collect_commands, hub_commands, testing_commands):
        package.register(sub)
    return top


GLOBAL_FLAGS = ("--debug", "--quiet")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cropmark")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; known errors are one line on stderr and exit status 2, and Ctrl-C,
    whenever it comes (the imports included), one line and exit status 130.

    ``--debug`` (shows the traceback instead) and ``--quiet`` (no progress bars) are
    accepted anywhere before a ``--``, before or after the command.
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the program's own process
        _open_standard_descriptors()
    end = args_in.index("--") if "--" in args_in else len(args_in)
    flags = {flag: flag in args_in[:end] for flag in GLOBAL_FLAGS}
    args_in = [a for a in args_in[:end] if a not in GLOBAL_FLAGS] + args_in[end:]
    try:
        code = _run(args_in, flags)
        try:
            # What is buffered for the standard output (a pipe's or a file's, unless
            # PYTHONUNBUFFERED) is written here, where a failure is answered, and not at the
            # interpreter's exit (status 120 and "Exception ignored").
            if sys.stdout is not None:
                sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full device (>/dev/full), an I/O error
            _silence_stdout()
            shown = " ".join(str(exc).split())
            print(
                f"error: the standard output could not be written ({shown}); what the command did stands",
                file=sys.stderr,
            )
            return 2
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # another pipe (a worker's, a socket's): not the reader of this output
        # The reader of the standard output went away (``cropmark build ... | head -1``): what
        # the command did is done, only its printing stops. It ends silently with the status
        # of a process that SIGPIPE ends (128 + 13), as Unix tools do.
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt as exc:
        from builder.errors import Interrupted

        if isinstance(exc, Interrupted):
            said = str(exc)
        elif args_in[:1] == ["build"]:
            said = "the previous release, if any, is untouched"
        else:
            said = f"{args_in[0] if args_in else 'cropmark'} stopped before it finished"
        print(f"interrupted: {said}", file=sys.stderr)
        if argv is None:  # the program's own process (cropmark, python -m builder.cli)
            # The one line is said: a second Ctrl-C while the process stops (its workers finish
            # the chunk they hold) would otherwise be a traceback from the interpreter's exit.
            with contextlib.suppress(ValueError):  # not the main thread: signals are not ours
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 130


def _open_standard_descriptors() -> None:
    """Open ``/dev/null`` on each of descriptors 0, 1 and 2 that is closed (``cropmark build
    >&- 2>&-``), so that no file the command opens gets one of those numbers: the next file
    opened takes the lowest free descriptor, and whatever writes to standard output or error
    by number (a C library's warning, a child process) would write into it (the release's
    lock file, a tile being written). What the command prints then goes nowhere, as asked.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            os.set_inheritable(fd, True)


def _silence_stdout() -> None:
    """Point the standard output at /dev/null and drop what is buffered for it, so that the
    interpreter's flush at exit does not fail again (Python's signal module documentation,
    "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _stdout_gone() -> bool:
    """Whether the standard output is a pipe whose reader has closed it (poll(2): POLLERR on
    the write end of a pipe without readers)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no descriptor (a replaced sys.stdout)
        return False


def _run(args_in: list[str], flags: dict[str, bool]) -> int:
    try:
        args = parser().parse_args(args_in)
    except SystemExit as exc:  # usage errors (one line, see _Parser) and --help
        return exc.code if isinstance(exc.code, int) else 2
    args.debug = flags["--debug"]
    args.quiet = flags["--quiet"] or getattr(args, "quiet", False)
    from builder import progress

    progress.set_quiet(args.quiet)
    try:
        code: int = args.func(args)
    except (CropmarkError, OSError) as exc:
        if args.debug or (isinstance(exc, BrokenPipeError) and _stdout_gone()):
            raise  # the output's reader went away: main ends silently
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
