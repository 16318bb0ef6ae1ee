"""gdb endpoints: what `bbv run --gdb` gives QEMU (-gdb) and what `bbv gdb` gives gdb
(`target remote`). Syntax: `tcp:HOST:PORT`, `tcp::PORT` (loopback), `unix:PATH`, and for
`bbv gdb` also gdb's own `HOST:PORT` and a bare `PORT`."""

from __future__ import annotations

import os
import socket
import stat

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.ports import bind_error, in_use
from barebox_virtio_cli.util.sockets import LOOPBACK, Endpoint, bracket, parse_host_port

FORMS = "tcp:HOST:PORT, tcp::PORT, unix:PATH or PORT"


def qemu_arg(endpoint: Endpoint) -> str:
    """The -gdb value; QEMU itself adds server=on,wait=off to tcp: but not to unix:."""
    if endpoint.path:
        return f"unix:{endpoint.path.replace(',', ',,')},server=on,wait=off"
    return f"tcp:{bracket(endpoint.host)}:{endpoint.port}"


def gdb_remote(endpoint: Endpoint) -> str:
    """The argument of gdb's `target remote`."""
    return endpoint.path or f"{bracket(endpoint.host or LOOPBACK)}:{endpoint.port}"


def parse(text: str, option: str = "ENDPOINT") -> Endpoint:
    """unix: and tcp: endpoints, and gdb's own HOST:PORT and PORT."""
    if sockets.is_bare(text):
        return parse_host_port(text if ":" in text else f":{text}", text, option, FORMS)
    endpoint = sockets.parse(text, option, FORMS)
    if not endpoint.path:
        return endpoint
    path = os.path.abspath(endpoint.path)
    if any(c.isspace() for c in path):
        raise UsageError(f"{option} '{text}': gdb cannot connect to a socket path with "
                         "spaces; choose another")
    sockets.check_path(path, f"{option} '{text}'")
    return Endpoint(path=path)


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
        sockets.check_free(endpoint.path, f"--gdb {endpoint}")
        return endpoint
    endpoint = Endpoint(host=endpoint.host or LOOPBACK, port=endpoint.port)
    _check_port_free(endpoint)
    return endpoint


def _check_port_free(endpoint: Endpoint) -> None:
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
    with socket.socket(endpoint.family) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.address)
        except ConnectionRefusedError:
            return f"nothing listens on {endpoint}"
        except OSError as exc:
            return f"cannot connect to {endpoint} ({exc.strerror or 'timed out'})"
    return None
