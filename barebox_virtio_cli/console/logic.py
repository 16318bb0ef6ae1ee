"""Pure logic of `bbv console`: the kind of a path, escape-key parsing, the escape-key state
machine, the timestamped line log and the typing that activates a virtio console over the
serial line. Nothing here touches files, sockets or terminals."""

from __future__ import annotations

import stat
import time

from barebox_virtio_cli.errors import UsageError

DEFAULT_ESCAPE = "^]"
ESCAPE_WINDOW = 0.5  # seconds in which a second escape key sends the first one through


def path_kind(path: str, mode: int, pty: bool = True) -> str:
    """'unix' or (if pty) 'pty' for an existing file of this st_mode; UsageError for anything
    else."""
    if stat.S_ISSOCK(mode):
        return "unix"
    if stat.S_ISCHR(mode) and pty:
        return "pty"
    raise UsageError(f"{path}: not a unix socket" + (" or a terminal (pty)" if pty else ""))


def parse_escape(text: str) -> int | None:
    """'^]', '^A', 'ctrl-]', 'C-a', one plain character, or 'none' -> a byte value or None."""
    lowered = text.lower()
    if lowered == "none":
        return None
    for prefix in ("^", "ctrl-", "ctrl+", "c-"):
        if lowered.startswith(prefix) and len(text) == len(prefix) + 1:
            char = text[-1].upper()
            if "@" <= char <= "_" or char == "?":
                return 0x7F if char == "?" else ord(char) - 0x40
    if len(text) == 1 and ord(text) < 128 and text != "^":  # a lone ^ is an unfinished ^X
        return ord(text)
    raise UsageError(f"--escape '{text}' is not a key: use ^X (Ctrl-X), ctrl-X, one ASCII "
                     "character, or 'none'")


def escape_name(byte: int) -> str:
    if byte < 0x20:
        return f"Ctrl-{chr(byte + 0x40)}"
    return "Ctrl-?" if byte == 0x7F else chr(byte)


class EscapeFilter:
    """Terminal input -> bytes to send. One escape key leaves (after ESCAPE_WINDOW, or at once
    when another key follows); two in a row send one escape byte through."""

    def __init__(self, key: int | None, window: float = ESCAPE_WINDOW):
        self.key = key
        self.window = window
        self.deadline: float | None = None  # set while an escape waits for a possible second
        self.quit = False

    def feed(self, data: bytes, now: float) -> bytes:
        if self.key is None or (self.deadline is None and self.key not in data):
            return data
        out = bytearray()
        for byte in data:
            if self.deadline is not None:
                self.deadline = None
                if byte == self.key:
                    out.append(byte)
                    continue
                self.quit = True
                return bytes(out)
            if byte == self.key:
                self.deadline = now + self.window
            else:
                out.append(byte)
        return bytes(out)

    def expire(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.quit = True


class LineStamper:
    """Received bytes -> lines prefixed with the local time their first byte arrived."""

    def __init__(self) -> None:
        self.at_line_start = True

    def feed(self, data: bytes, now: float) -> bytes:
        stamp = _stamp(now)
        out = bytearray()
        for line in data.splitlines(keepends=True):
            if self.at_line_start:
                out += stamp
            self.at_line_start = line.endswith(b"\n")
            out += line.rstrip(b"\r\n") + b"\n" if self.at_line_start else line
        return bytes(out)


def _stamp(now: float) -> bytes:
    local = time.localtime(now)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', local)}.{int(now % 1 * 1000):03d} ".encode()
