"""Keeping a selector's registrations equal to what a loop wants this turn."""

from __future__ import annotations

import contextlib
import selectors


def sync(sel: selectors.BaseSelector, registered: dict[int, int], want: dict[int, int]) -> None:
    """Register, modify or unregister so that sel watches exactly `want` (fd -> events);
    `registered` is the caller's record of what sel watches."""
    for fd in [fd for fd in registered if fd not in want]:
        with contextlib.suppress(KeyError, ValueError):  # a closed fd is gone already
            sel.unregister(fd)
        del registered[fd]
    for fd, events in want.items():
        if fd not in registered:
            sel.register(fd, events)
        elif registered[fd] != events:
            sel.modify(fd, events)
        registered[fd] = events
