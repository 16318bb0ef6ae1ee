"""bbv's one signal and exit policy. Stopped by signal N (SIGINT, SIGTERM, SIGHUP), bbv stops
its children (QEMU, make), cleans up and exits 128+N, in every mode; a child that died by
signal N gives 128+N too, as a shell reports it. Handlers are always restored."""

from __future__ import annotations

# _signal, not signal: the same functions and numbers, without the enums that signal builds at
# import (a millisecond of every command's start-up, which installs these handlers).
import _signal as signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from barebox_virtio_cli.util.status import say

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
IGNORE = signal.SIG_IGN  # a handler for handling(): the signal is ignored meanwhile
__all__ = ["IGNORE", "STOP_SIGNALS", "Signalled", "announce_stop", "deferred", "exit_status",
           "handling", "raising", "signal_status", "stop_line_last", "stopped"]
_held: list[list[int]] = []  # stop_line_last: the stop lines held back, innermost block last


def signal_status(signum: int) -> int:
    """bbv's exit status after signal N: 128+N, as a shell reports it (the one place that
    says so; tests/test_layout.py checks)."""
    return 128 + signum


class Signalled(BaseException):
    """bbv was stopped by signal N: exit status 128+N. A BaseException like KeyboardInterrupt,
    so that no `except Exception` swallows it and every `finally` runs."""

    def __init__(self, signum: int):
        import signal as signals  # the enums, for the name: only once a signal came

        super().__init__(signals.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return signal_status(self.signum)


def announce_stop(signum: int) -> int:
    """bbv was stopped by signal N: say so (`bbv: stopped by SIGTERM`, the same line in every
    mode) and give the exit status, 128+N."""
    stop = Signalled(signum)
    if _held:
        _held[-1].append(signum)
    else:
        say(f"stopped by {stop}")
    return stop.exit_status


@contextmanager
def stop_line_last() -> Iterator[None]:
    """Hold back the stop line said inside the block until the block ends, so that what the
    block says after its run stopped (where a recording lies) comes first and the stop line
    stays bbv's last. Usable as a decorator."""
    held: list[int] = []
    _held.append(held)
    try:
        yield
    finally:
        _held.remove(held)
        for signum in held[:1]:
            announce_stop(signum)


def stopped(exc: Signalled | KeyboardInterrupt) -> Signalled:
    """The signal that stopped bbv: Python raises KeyboardInterrupt for SIGINT."""
    return exc if isinstance(exc, Signalled) else Signalled(signal.SIGINT)


def exit_status(returncode: int) -> int:
    """A child's exit status as bbv's: its code, or 128+N if signal N killed it (Popen gives
    -N)."""
    return signal_status(-returncode) if returncode < 0 else returncode


@contextmanager
def handling(signums: tuple[int, ...], handler: Callable[[int, object], None]) -> Iterator[None]:
    """Install handler for signums while the block runs, then restore the old handlers. Off the
    main thread (where Python cannot install handlers) nothing is installed."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)


@contextmanager
def raising(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Turn the signals into a Signalled exception (once), so that every cleanup runs. SIGINT
    is left to Python's KeyboardInterrupt, which the CLI turns into 130 the same way."""
    fired: list[int] = []

    def handler(signum, _frame):
        if not fired:
            fired.append(signum)
            raise Signalled(signum)

    with handling(signums, handler):
        yield


@contextmanager
def deferred(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[Callable[[], None]]:
    """Record the signals instead of raising where they land, for a block that must not be cut
    at an arbitrary point (a child started but not yet in the caller's hands; asyncio, which
    swallows exceptions raised in its callbacks). The block calls the check it is given at safe
    points; it raises Signalled for the first signal, as does the end of the block."""
    fired: list[int] = []

    def check() -> None:
        if fired:
            raise Signalled(fired[0])

    try:
        with handling(signums, lambda signum, _frame: fired.append(signum)):
            yield check
    finally:
        check()
