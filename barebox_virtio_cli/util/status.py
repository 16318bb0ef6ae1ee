"""bbv's status lines: `bbv: ...` on stderr, never on stdout (which carries data). The one way
bbv reports progress and state, in every command and in the console relay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
