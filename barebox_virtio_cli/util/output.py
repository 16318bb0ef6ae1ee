"""Where results go: lines on stdout (or stderr), and tables on a rich Console on stdout that,
when stdout is a pipe or a file, never cuts a value with '…' nor wraps it, so that
`bbv targets | grep malta` sees whole names."""

from __future__ import annotations

import sys

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
