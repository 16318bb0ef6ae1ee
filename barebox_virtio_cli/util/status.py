"""bbv's status lines: `bbv: ...` on stderr, never on stdout (which carries data), and the live
displays on stderr's terminal (make's progress, a download bar, `bbv test`'s targets). The one
way bbv reports progress and state, in every command and in the console relay."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from contextvars import ContextVar

# Where say() writes in this thread: None for stderr, else a list (collected()).
_into: ContextVar[list[str] | None] = ContextVar("bbv_status_into", default=None)


def say(text: str, raw: bool = False, prefix: str = "bbv: ") -> None:
    """One line on stderr, written at once (unbuffered, so it keeps its place among QEMU's and
    the relay's output). raw: the terminal is in raw mode, so end the line with CR LF. A
    closed stderr is ignored."""
    line = f"{prefix}{text}{chr(13) if raw else ''}\n"
    into = _into.get()
    if into is not None:
        into.append(line)
        return
    with suppress(OSError):
        # surrogateescape: a file name that is not UTF-8 comes out as the bytes it was
        os.write(2, line.encode(errors="surrogateescape"))


@contextmanager
def collected(into: list[str]) -> Iterator[list[str]]:
    """While the block runs, this thread's status lines go into the list, not to stderr, and
    no live display starts (make's progress): a service run inside another command's display
    (`bbv test` builds and exports in process)."""
    token = _into.set(into)
    try:
        yield into
    finally:
        _into.reset(token)


def collecting() -> bool:
    return _into.get() is not None


# --- live displays ------------------------------------------------------------------------------
# A service shows its progress through one of these, never with rich itself: it hands over a
# callback (the line's text) or gets one (a download's bytes, a target's line). Each is drawn on
# stderr only while stderr is a terminal and no one collects the status lines, and removed when
# done (transient): the status lines and the result stay.

def _terminal():
    """stderr's rich Console when a live display may be drawn there, else None."""
    if collecting():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None


@contextmanager
def _live(renderable, console, refresh: float) -> Iterator[None]:
    from rich.live import Live

    with Live(renderable, console=console, refresh_per_second=refresh, transient=True):
        yield


class Spinning:
    """A spinner and text(), cut to the terminal's width (never wrapped). One spinner for the
    whole display: a new one per refresh would always show its first frame."""

    def __init__(self, text: Callable[[], str]) -> None:
        self.text, self.spinner = text, None

    def at(self, width: int):
        from rich.spinner import Spinner
        from rich.text import Text

        line = Text(self.text())
        line.truncate(max(width - 2, 10), overflow="ellipsis")
        if self.spinner is None:
            self.spinner = Spinner("dots", line)
        else:
            self.spinner.update(text=line)
        return self.spinner

    def __rich_console__(self, console, options):
        yield self.at(options.max_width)


@contextmanager
def spinning(text: Callable[[], str], refresh: float = 8) -> Iterator[None]:
    """While the block runs, a spinner before text(), asked again at each refresh (make's
    steps and time left, 'unpacking ...')."""
    console = _terminal()
    if console is None:
        yield
        return
    with _live(Spinning(text), console, refresh):
        yield


Transferred = Callable[[int, int], None]  # (bytes so far, total or 0)


@contextmanager
def transfer(name: str) -> Iterator[Transferred]:
    """A download bar for name (bytes, speed, time left); the block gets the callback that
    moves it, which does nothing when no bar is drawn."""
    console = _terminal()
    if console is None:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(name, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


_MARKUP = re.compile(r"\[/?[a-z ]*\]")


class Rows:
    """One line per name (`bbv test`: a target's state), in rich markup: a live table when
    live, else a status line 'name: text' (markup removed) per change. Threads may set lines."""

    def __init__(self, names: list[str], live: bool) -> None:
        self.lines = dict.fromkeys(names, "waiting")
        self.lock = threading.Lock()
        self._stack = ExitStack()
        console = _terminal() if live else None
        self.live = console is not None
        if self.live:
            self._stack.enter_context(_live(self, console, refresh=4))

    def __rich__(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        with self.lock:
            for name, line in self.lines.items():
                table.add_row(f"[bold]{name}[/]", line)
        return table

    def set(self, name: str, line: str, say_it: bool = True) -> None:
        """say_it=False: a change too frequent for a status line of its own (a count)."""
        with self.lock:
            changed = self.lines.get(name) != line
            self.lines[name] = line
        if changed and not self.live and say_it:
            say(f"{name}: {_MARKUP.sub('', line)}")

    def close(self) -> None:
        self._stack.close()
