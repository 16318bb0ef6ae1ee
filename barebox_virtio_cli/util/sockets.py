"""Sockets, for every caller: the unix socket path limit and its check, whether a socket file is
served or stale, and the `unix:PATH` / `tcp:HOST:PORT` endpoint syntax."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import UsageError

PATH_MAX = 107  # sun_path is 108 bytes; a client cannot connect to a 108-byte path
LOOPBACK = "127.0.0.1"
SCHEMES = ("unix:", "tcp:")
FORMS = "unix:PATH, tcp:HOST:PORT or tcp::PORT"

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Endpoint:
    """A unix socket (path) or a TCP host and port. An empty host is loopback to a client."""

    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"tcp:{bracket(self.host)}:{self.port}"

    @property
    def name(self) -> str:
        """How a user names it: a unix socket by its path alone."""
        return self.path or str(self)

    @property
    def family(self) -> socket.AddressFamily:
        if self.path:
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def address(self) -> str | tuple[str, int]:
        """What socket.connect takes."""
        return self.path or (self.host or LOOPBACK, self.port)


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse(text: str, what: str, forms: str = FORMS, bare_path: bool = False) -> Endpoint:
    """`unix:PATH`, `tcp:HOST:PORT` (HOST may be `[v6]`) or `tcp::PORT`, and with bare_path a
    plain PATH; `what` (the option) and `forms` (the syntax the caller takes) name it in the
    error."""
    if bare_path and text and is_bare(text):
        return Endpoint(path=text)
    if text.startswith("unix:"):
        if not text[5:]:
            raise UsageError(f"{what} '{text}': unix: needs a socket path")
        check_path(text[5:], f"{what} '{text}'")
        return Endpoint(path=text[5:])
    if text.startswith("tcp:"):
        return parse_host_port(text[4:], text, what)
    raise UsageError(f"{what} '{text}' is not {forms}")


def is_bare(text: str) -> bool:
    """Whether the endpoint text names no scheme (for callers that take a plain PATH)."""
    return not text.startswith(SCHEMES)


def parse_host_port(rest: str, text: str, what: str,
                    forms: str = "tcp:HOST:PORT or tcp::PORT") -> Endpoint:
    """`HOST:PORT` or `:PORT` (rest) of the endpoint `text`."""
    host, sep, port = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    number = port.isascii() and port.isdigit()  # not int('²'), which isdigit() lets by
    if sep and number and not 0 < int(port) < 65536:
        raise UsageError(f"{what} '{text}': port {port} out of range; give a port from 1 to "
                         "65535")
    if not sep or not number:
        raise UsageError(f"{what} '{text}' is not {forms} (port 1-65535)")
    return Endpoint(host=host, port=int(port))


def check_path(path: StrPath, what: str) -> None:
    """UsageError when no unix socket can have this path: it is too long."""
    size = len(os.fsencode(path))
    if size > PATH_MAX:
        raise UsageError(f"{what}: the socket path is {size} bytes, more than the {PATH_MAX} a "
                         "unix socket allows; choose a shorter path (a symlink to its directory "
                         "works)")


def served(path: StrPath) -> bool:
    """Whether a process accepts connections on the unix socket at path."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(os.fspath(path))
        except OSError:
            return False
    return True


def state(path: StrPath) -> str:
    """'absent', 'served', 'stale' (a socket file nobody accepts on: a killed bbv or QEMU left
    it) or 'other' (not a socket)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "absent"
    if not stat.S_ISSOCK(mode):
        return "other"
    return "served" if served(path) else "stale"


def check_free(path: StrPath, what: str) -> Path:
    """The absolute path where a server is about to make a unix socket, checked: short enough,
    in an existing directory, and nothing there but perhaps a stale socket (the server
    replaces it). UsageError (prefixed with `what`) otherwise."""
    path = Path(os.path.abspath(path))
    check_path(path, what)
    if not path.parent.is_dir():
        raise UsageError(f"{what}: directory {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"{what}: is a directory; give the path of the socket to make, such "
                         f"as {path / 'console.sock'}")
    found = state(path)
    if found == "other":
        raise UsageError(f"{what}: exists and is not a socket; it would be replaced, so choose "
                         "another path")
    if found == "served":
        raise UsageError(f"{what}: already served by a running bbv or QEMU; stop it or choose "
                         "another path")
    return path


def claim(path: StrPath, what: str) -> Path:
    """check_free, then remove a stale socket so that the caller can bind there."""
    path = check_free(path, what)
    remove(path)
    return path


def remove(path: StrPath) -> None:
    """Remove the socket file at path, if there is one (and nothing else)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
