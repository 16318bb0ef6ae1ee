"""gdb endpoints: what `bbv run --gdb` gives QEMU (-gdb) and what `bbv gdb` gives gdb
(`target remote`). Syntax: `tcp:HOST:PORT`, `tcp::PORT` (loopback), `unix:PATH`, and for
`bbv gdb` also gdb's own `HOST:PORT` and a bare `PORT`."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

from barebox_virtio_cli.errors import BbvError, UsageError

SOCKET_PATH_MAX = 107
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    host: str = ""
    port: int = 0
    path: str = ""  # a unix socket instead of host:port

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"tcp:{_bracket(self.host)}:{self.port}"

    def qemu_arg(self) -> str:
        """The -gdb value; QEMU itself adds server=on,wait=off to tcp: but not to unix:."""
        if self.path:
            return f"unix:{self.path.replace(',', ',,')},server=on,wait=off"
        return f"tcp:{_bracket(self.host)}:{self.port}"

    def gdb_remote(self) -> str:
        """The argument of gdb's `target remote`."""
        return self.path if self.path else f"{_bracket(self.host or LOOPBACK)}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse(text: str, option: str = "ENDPOINT") -> Endpoint:
    if text.startswith("unix:"):
        path = os.path.abspath(text[5:]) if text[5:] else ""
        if not path:
            raise UsageError(f"{option} '{text}': unix: needs a socket path")
        if any(c.isspace() for c in path):
            raise UsageError(f"{option} '{text}': gdb cannot connect to a socket path with "
                             "spaces; choose another")
        if len(path.encode()) > SOCKET_PATH_MAX:
            raise UsageError(f"{option} '{text}': the socket path is {len(path.encode())} "
                             f"bytes, more than the {SOCKET_PATH_MAX} a unix socket allows")
        return Endpoint(path=path)
    rest = text[4:] if text.startswith("tcp:") else text
    host, sep, port = rest.rpartition(":")
    if not sep and not text.startswith("tcp:"):
        host = ""
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} '{text}' is not tcp:HOST:PORT, tcp::PORT, unix:PATH "
                         "or PORT")
    return Endpoint(host=host, port=int(port))


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def for_qemu(text: str | None) -> Endpoint:
    """The endpoint `bbv run --gdb [ENDPOINT]` serves, checked to be free: a bare --gdb
    takes a free loopback port; `tcp::PORT` listens on loopback only."""
    if not text:
        return Endpoint(host=LOOPBACK, port=free_loopback_port())
    endpoint = parse(text, "--gdb")
    if endpoint.path:
        _check_socket_path(endpoint.path)
        return endpoint
    endpoint = Endpoint(host=endpoint.host or LOOPBACK, port=endpoint.port)
    _check_port_free(endpoint)
    return endpoint


def _check_port_free(endpoint: Endpoint) -> None:
    from barebox_virtio_cli.util.ports import bind_error, in_use

    exc = bind_error(endpoint.host, endpoint.port)
    if exc is None:
        return
    if in_use(exc):
        raise UsageError(f"--gdb {endpoint}: port {endpoint.port} is in use; choose "
                         "another, or give a bare --gdb for a free one")
    raise UsageError(f"--gdb {endpoint}: cannot listen there ({exc.strerror})")


def check_listening(endpoint: Endpoint, timeout: float = 3.0, grace: float = 3.0) -> None:
    """Something accepts connections at the endpoint; gdb would otherwise retry a refused
    tcp connection for seconds and still exit 0. A stub that is not up yet gets `grace`
    seconds: `bbv run --gdb` prints the attach command as QEMU starts. (QEMU's stub pauses the
    guest on any connection, as gdb's own would.)"""
    import time

    endpoint = endpoint if endpoint.path else Endpoint(host=endpoint.host or LOOPBACK,
                                                       port=endpoint.port)
    deadline = time.monotonic() + grace
    while (problem := _listening_problem(endpoint, timeout)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if problem:
        raise BbvError(f"{problem}; start 'bbv run --gdb' first (or give the endpoint it "
                       "printed)")


def _listening_problem(endpoint: Endpoint, timeout: float) -> str | None:
    if endpoint.path and not os.path.exists(endpoint.path):
        return f"no socket {endpoint.path}"
    if endpoint.path and not stat.S_ISSOCK(os.stat(endpoint.path).st_mode):
        return f"{endpoint.path} is not a socket"
    return _connect_problem(endpoint, timeout)


def _connect_problem(endpoint: Endpoint, timeout: float) -> str | None:
    family = socket.AF_UNIX if endpoint.path else (
        socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET)
    with socket.socket(family) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.path or (endpoint.host, endpoint.port))
        except ConnectionRefusedError:
            return f"nothing listens on {endpoint}"
        except OSError as exc:
            return f"cannot connect to {endpoint} ({exc.strerror or 'timed out'})"
    return None


def _check_socket_path(path: str) -> None:
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UsageError(f"--gdb unix:{path}: directory {parent} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise UsageError(f"--gdb unix:{path}: exists and is not a socket; QEMU would replace "
                         "it, so choose another path")
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(path)
        except OSError:
            return  # stale: QEMU replaces it
    raise UsageError(f"--gdb unix:{path}: already served by another process; choose another path")
