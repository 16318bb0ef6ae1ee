"""bbv's one QMP client: qemu.qmp's synchronous QEMUMonitorProtocol, over the unix socket an
attached QEMU serves (qemu/machine.py) or over a socketpair handed to QEMU (qemu/probe.py)."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from barebox_virtio_cli.util.signals import deferred

if TYPE_CHECKING:
    from qemu.qmp.legacy import QEMUMonitorProtocol

T = TypeVar("T")
TIMEOUT = 10.0  # seconds for QEMU to answer a command: a stopped or hung QEMU never does


@functools.cache
def _protocol() -> type[QEMUMonitorProtocol]:
    """qemu.qmp's client, imported where a monitor is made: it loads asyncio (30 ms).

    When QEMU quits or dies under qemu.qmp (bbv's own `quit` included), its reader tasks end
    with an exception nobody retrieves, and asyncio would print that, with a traceback, through
    logging's last resort. bbv reports QEMU's end itself."""
    import logging

    from qemu.qmp.legacy import QEMUMonitorProtocol

    for name in ("asyncio", "qemu.qmp"):
        logging.getLogger(name).addHandler(logging.NullHandler())
    return QEMUMonitorProtocol


def _signals_held(function: Callable[..., T]) -> Callable[..., T]:
    """qemu.qmp runs asyncio, whose callbacks swallow what a signal handler raises there, and
    bbv's handlers raise once: the signal would be lost and bbv run on. Signals wait until the
    call returns (util/signals.deferred); QMP calls are short, and time out."""

    @functools.wraps(function)
    def held(*args, **kwargs) -> T:
        with deferred():
            return function(*args, **kwargs)

    return held


def fd_monitor_args(fd: int) -> list[str]:
    """QEMU options for a QMP monitor on an inherited, connected socket (no socket file)."""
    return ["-chardev", f"socket,id=bbvqmp,fd={fd}", "-mon", "chardev=bbvqmp,mode=control"]


@_signals_held
def over_socket(sock: socket.socket, timeout: float | None = TIMEOUT) -> QEMUMonitorProtocol:
    """The client on our end of a socketpair; negotiated, ready for commands. timeout=None:
    commands wait until QEMU answers or hangs up (the caller bounds QEMU's life)."""
    monitor = _protocol()(sock)
    monitor.connect()
    monitor.settimeout(timeout)
    return monitor


@_signals_held
def connect_unix(path: Path) -> QEMUMonitorProtocol:
    """The client on QEMU's QMP server socket; an error (qemu.qmp wraps the OSError) while
    QEMU does not listen yet."""
    monitor = _protocol()(str(path))
    try:
        monitor.connect()
    except BaseException:
        close(monitor)
        raise
    monitor.settimeout(TIMEOUT)
    return monitor


@_signals_held
def execute(monitor: QEMUMonitorProtocol, command: str, **arguments) -> dict:
    """The whole reply ({'return': ...} or {'error': ...})."""
    request: dict = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    return monitor.cmd_obj(request)


@_signals_held
def close(monitor: QEMUMonitorProtocol) -> None:
    with suppress(Exception):  # EOFError once QEMU has quit
        monitor.close()
