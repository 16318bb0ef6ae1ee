"""Where tables go: a rich Console on stdout that, when stdout is a pipe or a file, never cuts
a value with '…' nor wraps it, so that `bbv targets | grep malta` sees whole names."""

from __future__ import annotations

PIPE_WIDTH = 10_000  # wide enough for any row; tables are only as wide as their contents


def stdout_console():
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH)
