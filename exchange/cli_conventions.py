"""What both command lines, ``exchange`` and ``exchange-hub``, do the same way.

* ``--version`` prints the program and package version.
* Output piped into a reader that stops early (``| head``) ends the command quietly, exit 0.
* Off a terminal nothing is wrapped: a key or an id printed on one line stays on one line.
* With ``--json`` an error is one JSON object on stderr: ``error`` (the error's class),
  ``reason`` (the ``ErrorInfo`` reason code) and ``message``, with ``violations`` for bad input.
* A list of validation errors shows the first :data:`MAX_LISTED_VIOLATIONS` and "and N more".
* Work that takes more than a second shows a progress bar, on a terminal's stderr only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import Any, NoReturn, TextIO, TypeVar, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from exchange.errors import ExchangeError, FieldViolation, InvalidInputError

MAX_LISTED_VIOLATIONS = 20
"""Validation errors printed one per line; the rest are counted ("and N more")."""

PROGRESS_DELAY_SECONDS = 1.0
"""Work that ends sooner than this shows no progress bar at all."""

PIPE_WIDTH = 1000
"""The width tables are laid out in when the output is not a terminal."""

USAGE_REASON = "USAGE"
"""The ``reason`` of a command-line usage error (a missing argument, an unknown option)."""

_T = TypeVar("_T")


# --- --version --------------------------------------------------------------------------------


def package_version() -> str:
    """The installed version of the ``exchange`` distribution."""
    try:
        return metadata.version("exchange")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_callback(program: str) -> Callable[[bool], None]:
    """A ``--version`` option callback that prints ``PROGRAM VERSION`` and exits."""

    def show(value: bool) -> None:
        if value:
            sys.stdout.write(f"{program} {package_version()}\n")
            raise typer.Exit(0)

    return show


def version_option(program: str) -> Any:
    """The eager ``--version`` option of ``program``'s root command."""
    return typer.Option(
        "--version",
        callback=version_callback(program),
        is_eager=True,
        help="Print the version and exit.",
    )


# --- consoles ---------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console for stdout (or stderr) that never wraps lines when it is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if _is_terminal(stream):
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=PIPE_WIDTH)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


# --- errors -----------------------------------------------------------------------------------


def json_requested(ctx: typer.Context | None) -> bool:
    """Whether ``--json`` was given to the command of ``ctx`` or to one of its parents."""
    current: Any = ctx
    while current is not None:
        for param in current.command.params:
            if "--json" in getattr(param, "opts", ()) and current.params.get(param.name or ""):
                return True
        current = current.parent
    return False


def error_document(error: ExchangeError) -> dict[str, Any]:
    """The JSON form of an error: ``error``, ``reason``, ``message`` (and ``violations``)."""
    document: dict[str, Any] = {
        "error": type(error).__name__,
        "reason": error.reason,
        "message": error.message,
    }
    if isinstance(error, InvalidInputError) and error.violations:
        document["violations"] = [
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    return document


def print_json_error(document: dict[str, Any]) -> None:
    """Write one error object as a line of JSON on stderr."""
    sys.stderr.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stderr.flush()


def print_error_line(text: str) -> None:
    """Write an error for people on stderr, in red on a terminal, never wrapped."""
    console(stderr=True).print(text, markup=False, soft_wrap=True, style="red")


def fail(error: ExchangeError, *, code: int, as_json: bool, text: str | None = None) -> NoReturn:
    """Report ``error`` on stderr (JSON with ``--json``) and exit with ``code``."""
    if as_json:
        print_json_error(error_document(error))
    else:
        print_error_line(text if text is not None else describe(error))
    raise typer.Exit(code)


def describe(error: ExchangeError, *, prefix: str = "error") -> str:
    """``PREFIX: message``, then its field violations one per line (at most 20 and a count)."""
    text = f"{prefix}: {error.message}"
    if isinstance(error, InvalidInputError):
        text += "".join(f"\n  {line}" for line in violation_lines(error.violations))
    return text


def listed(items: Sequence[_T], limit: int = MAX_LISTED_VIOLATIONS) -> tuple[Sequence[_T], int]:
    """The first ``limit`` of ``items`` and how many are left out."""
    return items[:limit], max(0, len(items) - limit)


def violation_lines(violations: Sequence[FieldViolation]) -> list[str]:
    """One line per violation, the first :data:`MAX_LISTED_VIOLATIONS`, then "and N more"."""
    shown, more = listed(violations)
    lines = [str(violation) for violation in shown]
    if more:
        lines.append(f"and {more} more")
    return lines


# --- progress ---------------------------------------------------------------------------------


class ProgressBar:
    """A bar on stderr that appears only if the work lasts over a second, and only on a
    terminal; elsewhere (a pipe, ``--json``) every call is a no-op."""

    def __init__(self, description: str, *, total: int | None, visible: bool) -> None:
        self._progress: Progress | None = None
        self._timer: threading.Timer | None = None
        if not visible:
            return
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if total is not None:
            columns.append(MofNCompleteColumn())
        columns.append(TimeElapsedColumn())
        self._progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task(description, total=total)
        self._timer = threading.Timer(PROGRESS_DELAY_SECONDS, self._progress.start)
        self._timer.daemon = True
        self._timer.start()

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)

    def note(self, text: str) -> None:
        """Print a line on stderr, above the bar if it is shown (the bar is never on stdout)."""
        if self._progress is not None and self._progress.live.is_started:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            console(stderr=True).print(text, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def progress(description: str, *, total: int | None = None, as_json: bool = False) -> Iterator[
    ProgressBar
]:
    """A :class:`ProgressBar` for the block: never with ``--json``, never off a terminal."""
    bar = ProgressBar(description, total=total, visible=not as_json and _is_terminal(sys.stderr))
    try:
        yield bar
    finally:
        bar.close()


# --- the entry point --------------------------------------------------------------------------


class OutputClosed(Exception):
    """The reader of stdout went away (``| head``): the command stops, and that is no error."""


class _PipeGuard:
    """Stands in for ``sys.stdout``, turning a broken pipe into :class:`OutputClosed`.

    A plain ``BrokenPipeError`` is an ``OSError``, which the command framework reports as a
    failure (exit 1); this one passes through it to :func:`run`.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        try:
            return int(self._stream.write(data))
        except BrokenPipeError as e:
            raise OutputClosed from e

    @property
    def buffer(self) -> Any:
        """The binary stream underneath, guarded alike (``sys.stdout.buffer.write``)."""
        return _PipeGuard(self._stream.buffer)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError as e:
            raise OutputClosed from e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _usage_error_class() -> type[Exception]:
    # The command framework's UsageError (missing argument, unknown option, bad value), which
    # typer exposes only as the base of its BadParameter.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def run(
    app: typer.Typer,
    *,
    on_error: Callable[[ExchangeError, bool], NoReturn],
) -> NoReturn:
    """Run ``app`` as a console script, following the conventions above.

    ``on_error(error, as_json)`` reports an :class:`ExchangeError` that escaped a command.
    """
    sys.stdout = cast(TextIO, _PipeGuard(sys.stdout))
    as_json = "--json" in sys.argv[1:]
    try:
        try:
            # Without --json the framework reports usage errors for people and exits itself.
            code = app(standalone_mode=False) if as_json else app()
        except _usage_error_class() as e:
            message = cast(Any, e).format_message()
            print_json_error({"error": "UsageError", "reason": USAGE_REASON, "message": message})
            sys.exit(cast(Any, e).exit_code)
        except ExchangeError as e:
            on_error(e, as_json)
    except OutputClosed:
        # Point stdout at /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        sys.exit(0)
    except typer.Exit as e:  # raised by --version or a command outside the framework's care
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
