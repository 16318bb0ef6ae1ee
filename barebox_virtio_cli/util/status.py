"""bbv's status lines: `bbv: ...` on stderr, never on stdout (which carries data). The one way
bbv reports progress and state, in every command and in the console relay."""

from __future__ import annotations

import os
from contextlib import suppress


def say(text: str, raw: bool = False, prefix: str = "bbv: ") -> None:
    """One line on stderr, written at once (unbuffered, so it keeps its place among QEMU's and
    the relay's output). raw: the terminal is in raw mode, so end the line with CR LF. A
    closed stderr is ignored."""
    with suppress(OSError):
        # surrogateescape: a file name that is not UTF-8 comes out as the bytes it was
        os.write(2, f"{prefix}{text}{chr(13) if raw else ''}\n".encode(errors="surrogateescape"))
