"""The side effects of `bbv console`: connecting to the endpoint, the selectors event loop that
relays bytes between it and stdin/stdout, and the terminal's raw mode.

Each direction owns one fixed buffer: a chunk is read into it and written on at once; what the
writer does not take stays pending, and that side is not read again until it has gone out. So
memory is bounded (two buffers) and a slow reader slows the writer instead of filling memory."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import sys
import termios
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO

from barebox_virtio_cli.console.logic import (
    EscapeFilter,
    LineStamper,
    escape_name,
    path_kind,
)
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.signals import Signalled, announce_stop, raising
from barebox_virtio_cli.util.sockets import Endpoint
from barebox_virtio_cli.util.status import say

CHUNK = 256 * 1024
RETRY = 0.1  # seconds between connection attempts while waiting for the endpoint
QUIET_HINT = 5.0
INACTIVE_HINT = ("nothing received yet. If barebox runs there, its virtio console may be "
                 "inactive: type 'cs1.active=ioe' (ARM/RISC-V virt) or 'cs2.active=ioe' (malta) "
                 "at the serial console's prompt ('devinfo' lists the consoles)")
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
LOST = (errno.EIO, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN)


class EndpointError(BbvError):
    """Cannot connect; transient ones (no socket yet, nobody serving it) are worth retrying."""

    def __init__(self, where: object, reason: str, hint: str = "", transient: bool = False):
        super().__init__(f"{where}: {reason}{hint}")
        self.reason, self.transient = reason, transient


@dataclass
class Options:
    endpoint: Endpoint
    escape: int | None = 0x1D  # Ctrl-]
    linger: float = 1.0  # after stdin EOF: leave once the endpoint has been quiet this long
    wait: float | None = None  # seconds to wait for the endpoint at start (inf: for ever)
    reconnect: bool = False
    log: BinaryIO | None = None
    timestamps: bool = False
    replay: bool = True  # from bbv's console server: the output since boot first
    pty: bool = True  # a path may be a pty (a bare PATH); unix:PATH insists on a socket
    quiet_hint: float = QUIET_HINT  # on a terminal: nothing received this long -> say why


class Conn:
    """A connected endpoint: a non-blocking fd, kept alive by its socket object if any."""

    def __init__(self, fd: int, sock: socket.socket | None = None):
        self.fd, self.sock = fd, sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)


def connect(endpoint: Endpoint, replay: bool = True, pty: bool = True) -> Conn:
    if not endpoint.path:
        return _connect_tcp(endpoint)
    path = endpoint.path
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        sockets.check_path(path, path)
        raise EndpointError(path, "no such socket", "; is QEMU running with this console? "
                            "(--wait waits for it)", transient=True) from None
    except OSError as exc:
        raise EndpointError(path, exc.strerror.lower()) from None
    if path_kind(path, mode, pty) == "pty":
        return _open_pty(path)
    sockets.check_path(path, path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not replay:  # bbv's console server replays to every client not bound like this
            from barebox_virtio_cli.console.server import live_name

            sock.bind(live_name())
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ECONNREFUSED:
            raise EndpointError(path, "connection refused", ": no QEMU is serving this socket "
                                "(a stale socket file)", transient=True) from None
        raise EndpointError(path, exc.strerror.lower(),
                            transient=exc.errno in (errno.ENOENT, errno.EAGAIN)) from None
    sock.setblocking(False)
    return Conn(sock.fileno(), sock)


def _connect_tcp(endpoint: Endpoint) -> Conn:
    try:
        sock = socket.create_connection(endpoint.address, timeout=5)
    except socket.gaierror as exc:
        raise EndpointError(endpoint.name, f"cannot resolve host '{endpoint.host}'",
                            f": {exc.strerror}") from None
    except ConnectionRefusedError:
        raise EndpointError(endpoint.name, "connection refused",
                            f": nothing listens on port {endpoint.port}", transient=True) from None
    except OSError as exc:
        raise EndpointError(endpoint.name, str(exc.strerror or exc).lower(),
                            transient=True) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return Conn(sock.fileno(), sock)


def _open_pty(path: str) -> Conn:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise EndpointError(path, exc.strerror.lower()) from None
    try:
        tty.setraw(fd, termios.TCSANOW)  # a pty QEMU serves must pass bytes unchanged
    except termios.error:
        os.close(fd)
        # a character device that is no terminal (/dev/null): bad input, like a regular file
        raise UsageError(f"{path}: not a unix socket or a terminal (pty)") from None
    return Conn(fd)


def _private_fd(fd: int, flags: int) -> int:
    """A non-blocking fd for stdin or stdout. Pipes and terminals are reopened, so that
    O_NONBLOCK stays off the file description the shell shares; others are used blocking."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            return os.open(f"/proc/self/fd/{fd}",
                           flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            pass
    return os.dup(fd)


@contextmanager
def raw_terminal(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    saved = termios.tcgetattr(0)
    try:
        tty.setraw(0, termios.TCSANOW)
        yield
    finally:
        with suppress(termios.error):  # the terminal may have hung up
            termios.tcsetattr(0, termios.TCSANOW, saved)


class Relay:
    def __init__(self, opts: Options, conn: Conn | None, terminal: bool):
        self.opts, self.conn, self.terminal = opts, conn, terminal
        self.raw = terminal and os.isatty(2)
        self.sel = selectors.PollSelector()  # poll, unlike epoll, also takes regular files
        self.in_fd = _private_fd(0, os.O_RDONLY)
        self.out_fd = _private_fd(1, os.O_WRONLY)
        self.in_buf, self.sock_buf = bytearray(CHUNK), bytearray(CHUNK)
        self.in_view, self.sock_view = memoryview(self.in_buf), memoryview(self.sock_buf)
        self.to_sock: memoryview | bytes | None = None  # pending, not yet taken by the endpoint
        self.to_out: memoryview | None = None  # pending, not yet taken by stdout
        self.stdin_open = True
        self.closing = False  # read nothing more; leave once to_out is written
        self.escape = EscapeFilter(opts.escape if terminal else None)
        self.stamper = LineStamper() if opts.timestamps else None
        self.linger_until: float | None = None
        self.retry_at: float | None = None
        self.wait_until: float | None = None
        self.registered: dict[int, int] = {}
        self.dirty = True
        self.announced_wait = False
        self.hint_at: float | None = None  # terminal only: when to say the console is silent
        if conn is not None:
            self._arm_hint()
        if conn is None:
            self.retry_at = time.monotonic()
            self.wait_until = self.retry_at + (opts.wait or 0.0)

    def _arm_hint(self) -> None:
        if self.terminal and self.opts.quiet_hint > 0:
            self.hint_at = time.monotonic() + self.opts.quiet_hint

    def close(self) -> None:
        self.sel.close()
        for fd in (self.in_fd, self.out_fd):
            os.close(fd)
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self) -> int:
        while True:
            if self.dirty:
                if self.closing and self.to_out is None:
                    return 0
                self._register()
            for key, mask in self.sel.select(self._timeout()):
                fd = key.fd
                if mask & WRITE:
                    self._writable(fd)
                if mask & READ:
                    self._readable(fd)
            if (self.retry_at is not None or self.linger_until is not None
                    or self.escape.deadline is not None or self.hint_at is not None):
                self._timers(time.monotonic())
            if self.escape.quit:
                say(f"left {self.opts.endpoint.name}", self.raw)
                return 0

    # -- registration -------------------------------------------------------------------------
    def _register(self) -> None:
        self.dirty = False
        want: dict[int, int] = {}
        if (self.stdin_open and not self.closing and self.to_sock is None
                and (self.conn is not None or self.terminal)):
            want[self.in_fd] = READ
        if self.conn is not None:
            events = (READ if not self.closing and self.to_out is None else 0) | \
                (WRITE if self.to_sock is not None else 0)
            if events:
                want[self.conn.fd] = events
        if self.to_out is not None:
            want[self.out_fd] = WRITE
        for fd in [fd for fd in self.registered if fd not in want]:
            self.sel.unregister(fd)
            del self.registered[fd]
        for fd, events in want.items():
            if fd not in self.registered:
                self.sel.register(fd, events)
            elif self.registered[fd] != events:
                self.sel.modify(fd, events)
            self.registered[fd] = events

    def _timeout(self) -> float | None:
        deadlines = [d for d in (self.retry_at, self.linger_until, self.escape.deadline,
                                 self.hint_at) if d is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    # -- events -------------------------------------------------------------------------------
    def _readable(self, fd: int) -> None:
        if fd == self.in_fd:
            self._read_stdin()
        elif self.conn is not None and fd == self.conn.fd:
            self._read_endpoint()

    def _writable(self, fd: int) -> None:
        if fd == self.out_fd and self.to_out is not None:
            self.to_out = self._write(fd, self.to_out)
            if self.to_out is None:
                self.dirty = True
        elif self.conn is not None and fd == self.conn.fd and self.to_sock is not None:
            self._send(self.to_sock)

    def _read_stdin(self) -> None:
        try:
            n = os.readv(self.in_fd, [self.in_buf])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the terminal hung up
                raise
            n = 0
        if n == 0:
            self._stdin_eof()
            return
        data: memoryview | bytes = self.in_view[:n]
        if self.escape.key is not None:
            data = self.escape.feed(bytes(data), time.monotonic())
        if self.conn is not None and data:
            self._send(data)

    def _send(self, data: memoryview | bytes) -> None:
        try:
            n = os.write(self.conn.fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno not in LOST:
                raise
            self._lost()
            return
        rest = memoryview(data)[n:] if n < len(data) else None
        if (rest is None) != (self.to_sock is None):
            self.dirty = True
        self.to_sock = rest

    def _read_endpoint(self) -> None:
        try:
            n = os.readv(self.conn.fd, [self.sock_buf])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in LOST:
                raise
            n = 0
        if n == 0:
            self._lost()
            return
        data = self.sock_view[:n]
        self.hint_at = None
        if self.opts.log is not None:
            self._log(data)
        if self.linger_until is not None:
            self.linger_until = time.monotonic() + self.opts.linger
        self.to_out = self._write(self.out_fd, data)
        if self.to_out is not None:
            self.dirty = True

    def _write(self, fd: int, data: memoryview) -> memoryview | None:
        """Write what fd takes now; return the rest. A closed stdout ends the relay."""
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            return data
        except BrokenPipeError:
            self.closing, self.stdin_open, self.dirty = True, False, True
            return None
        except OSError as exc:
            raise BbvError(f"cannot write the console's output: {exc.strerror.lower()}") from None
        return data[n:] if n < len(data) else None

    def _log(self, data: memoryview) -> None:
        if self.stamper is not None:
            data = self.stamper.feed(bytes(data), time.time())
        try:
            self.opts.log.write(data)
        except OSError as exc:
            raise BbvError(f"cannot write the --log file: {exc.strerror.lower()}") from None

    # -- state changes ------------------------------------------------------------------------
    def _stdin_eof(self) -> None:
        self.stdin_open, self.dirty = False, True
        if self.terminal or self.opts.linger <= 0 and self.to_sock is None:
            self.closing = True
        else:
            self.linger_until = time.monotonic() + self.opts.linger

    def _lost(self) -> None:
        if self.registered.pop(self.conn.fd, None) is not None:
            self.sel.unregister(self.conn.fd)
        self.conn.close()
        self.conn, self.to_sock, self.dirty = None, None, True
        self.hint_at = None
        if self.opts.reconnect and self.stdin_open:
            say(f"{self.opts.endpoint.name} closed; reconnecting when it comes back", self.raw)
            self.retry_at, self.wait_until = time.monotonic() + RETRY, float("inf")
            self.announced_wait = True
            return
        if self.terminal:
            say(f"{self.opts.endpoint.name} closed by the other side", self.raw)
        self.closing = True

    def _timers(self, now: float) -> None:
        self.escape.expire(now)
        if self.hint_at is not None and now >= self.hint_at:
            self.hint_at = None
            say(INACTIVE_HINT, self.raw)
        if self.linger_until is not None and now >= self.linger_until:
            if self.to_sock is None:
                self.closing, self.dirty = True, True
            else:
                self.linger_until = now + max(self.opts.linger, RETRY)
        if self.retry_at is not None and now >= self.retry_at:
            self._try_connect(now)

    def _try_connect(self, now: float) -> None:
        try:
            self.conn = connect(self.opts.endpoint, self.opts.replay, self.opts.pty)
        except EndpointError as exc:
            if not exc.transient or now >= self.wait_until:
                if exc.transient:
                    raise EndpointError(self.opts.endpoint.name, f"{exc.reason} after waiting "
                                        f"{self.opts.wait:g} s") from None
                raise
            if not self.announced_wait:
                self.announced_wait = True
                say(f"waiting for {self.opts.endpoint.name}", self.raw)
            self.retry_at = now + RETRY
            return
        self.retry_at = self.wait_until = None
        self.dirty, self.announced_wait = True, False
        self._arm_hint()
        say(f"connected to {self.opts.endpoint.name}", self.raw)


def run_console(opts: Options, conn: Conn | None = None) -> int:
    """Relay until the user leaves, the endpoint closes or stdin ends; return the exit status."""
    terminal = os.isatty(0)
    if conn is None and opts.wait is None:
        conn = connect(opts.endpoint, opts.replay, opts.pty)  # fail before the terminal is touched
    try:
        with raising(), raw_terminal(terminal):
            relay = Relay(opts, conn, terminal)
            try:
                if terminal:
                    key = f"{escape_name(opts.escape)} leaves, twice sends it" \
                        if opts.escape is not None else "no escape key"
                    state = "connected to" if conn is not None else "console for"
                    say(f"{state} {opts.endpoint.name}; {key}", relay.raw)
                return relay.run()
            finally:
                relay.close()
    except Signalled as exc:
        return announce_stop(exc.signum)
    finally:
        sys.stdout.flush()


def run_logged(opts: Options, log_path: str | None) -> int:
    """run_console, appending everything received to log_path (--log) when given."""
    if not log_path:
        return run_console(opts)
    try:
        opts.log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BbvError(f"--log {log_path}: {exc.strerror.lower()}") from None
    try:
        return run_console(opts)
    finally:
        opts.log.close()
