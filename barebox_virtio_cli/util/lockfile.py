"""Exclusive locks on files (fcntl.flock), held for a `with` block, the holder's pid written
in the file: one owner of 'one bbv at a time here'."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path, busy: Callable[[str], Exception],
              unusable: Callable[[OSError], Exception] | None = None) -> Iterator[None]:
    """Hold the lock on path (made if missing), or raise busy(holder's pid) at once;
    unusable(error) if given when the file cannot be opened for writing."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if unusable is None:
            raise
        raise unusable(exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def check_free(path: Path, busy: Callable[[str], Exception]) -> None:
    """Raise busy(holder's pid) if somebody holds the lock on path (a missing file: nobody)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise busy(holder(fd)) from None
    finally:
        os.close(fd)


def holder(fd: int) -> str:
    """The pid the lock's holder wrote, or '?'."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
