"""bbv's one QMP client: qemu.qmp's synchronous QEMUMonitorProtocol, over the unix socket an
attached QEMU serves (console/attach.py) or over a socketpair handed to QEMU (qemu/probe.py).
qemu.qmp brings asyncio, so this is imported only where QMP is spoken."""

from __future__ import annotations

import socket
from contextlib import suppress
from pathlib import Path

from qemu.qmp.legacy import QEMUMonitorProtocol


def fd_monitor_args(fd: int) -> list[str]:
    """QEMU options for a QMP monitor on an inherited, connected socket (no socket file)."""
    return ["-chardev", f"socket,id=bbvqmp,fd={fd}", "-mon", "chardev=bbvqmp,mode=control"]


def over_socket(sock: socket.socket) -> QEMUMonitorProtocol:
    """The client on our end of a socketpair; negotiated, ready for commands."""
    monitor = QEMUMonitorProtocol(sock)
    monitor.connect()
    return monitor


def connect_unix(path: Path) -> QEMUMonitorProtocol:
    """The client on QEMU's QMP server socket; an error (qemu.qmp wraps the OSError) while
    QEMU does not listen yet."""
    monitor = QEMUMonitorProtocol(str(path))
    try:
        monitor.connect()
    except BaseException:
        close(monitor)
        raise
    return monitor


def execute(monitor: QEMUMonitorProtocol, command: str, **arguments) -> dict:
    """The whole reply ({'return': ...} or {'error': ...})."""
    request: dict = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    return monitor.cmd_obj(request)


def close(monitor: QEMUMonitorProtocol) -> None:
    with suppress(Exception):  # EOFError once QEMU has quit
        monitor.close()
