"""Whether a server could listen on a host port (bbv run's --gdb and --port-forward check it
before QEMU starts, which otherwise fails late with its own message)."""

from __future__ import annotations

import errno
import socket


def bind_error(host: str, port: int, udp: bool = False) -> OSError | None:
    """The error binding host:port would give (None: free). SO_REUSEADDR as QEMU sets it, so
    a port whose last connection is in TIME_WAIT counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as sock:
        if not udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE
