"""Where results go: lines on stdout (or stderr), and tables on a rich Console on stdout that,
when stdout is a pipe or a file, never cuts a value with '…' nor wraps it, so that
`bbv targets | grep malta` sees whole names."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

PIPE_WIDTH = 10_000  # wide enough for any row; tables are only as wide as their contents


def echo(text: str = "", err: bool = False) -> None:
    """One line of a result (a report, an expectation) on stdout, or on stderr with err."""
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{text}\n")
    stream.flush()


def stdout_console():
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH)


def markup(text: str, err: bool = False) -> None:
    """One line in rich markup ([bold], [green]...) on stdout, or on stderr with err: styled on
    a terminal, plain text elsewhere; long lines are never wrapped."""
    from rich.console import Console

    Console(stderr=err, soft_wrap=True).print(text)


def escape(text: str) -> str:
    """text shown as it is inside markup (a '[' in a value is no tag)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A titled table on stdout, its cells in rich markup."""
    from rich.table import Table

    shown = Table(title=title)
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*row)
    stdout_console().print(shown)  # whole values in a pipe, as bbv targets and doctor
