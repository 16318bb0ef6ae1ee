"""bbv's own server for the virtio console, used by every `bbv run --console`.

QEMU writes the console into a FIFO (`-chardev pipe`), never into a socket: a virtconsole drops
what its chardev cannot take at once, and barebox writes a byte per request, so a socket that
is not read for one time slice loses output (facts sheet, item 13). A thread here drains the
FIFO all the time, keeps the output since boot in a bounded ring (and all of it in the
--console-log file), and serves it on a unix socket: every client gets the ring replayed, then
the live output; the clients' input goes to the guest, merged.

Nothing a client does stalls the FIFO: each client has its own bounded backlog, and a client
that falls more than CLIENT_BACKLOG behind (stopped, or not reading) is disconnected and named
on stderr. The protocol is plain bytes both ways, so `socat PATH -` is a full client. A client
whose socket is bound to an abstract name starting with LIVE_PREFIX gets no replay
(`bbv console --no-replay`; with socat: `UNIX-CONNECT:PATH,bind=...` is not abstract, so socat
clients always get the replay)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import selectors
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.processes import pid_alive
from barebox_virtio_cli.util.selector import sync

RING_SIZE = 4 << 20  # console output kept for replay
CLIENT_BACKLOG = RING_SIZE + (4 << 20)  # unsent bytes (replay included) before a client is cut
INPUT_MAX = 256 << 10  # client input waiting for the guest before clients are read no more
PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ for the FIFOs (Linux's default limit for a user)
FIFO_PREFIX = "bbv-vc-"
LIVE_PREFIX = b"\0bbv-live"
READ_CHUNK = 64 << 10
FAREWELL = 2.0  # seconds for the clients to take the last output when the server stops
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)
# While QEMU records, a byte typed reaches barebox only if barebox had its one-byte receive
# buffer posted when QEMU hands the byte over, at a checkpoint; QEMU reads the next byte from
# the FIFO before that. Measured (QEMU 7.2, vexpress): at 50 ms a character, most of a line
# is lost; at 250 ms it all arrives. So a recorded run's input goes a byte at a time, each once
# barebox has echoed the one before (output ending in it; any output for a control key) or
# after ECHO_WAIT, and once the console has been quiet for QUIET (not while barebox prints,
# whose output could pass for an echo).
QUIET = 0.05
ECHO_WAIT = 1.0


def _note(text: str) -> None:
    """A status line from the server thread; \r\n because the terminal may be raw."""
    with contextlib.suppress(OSError):
        os.write(2, f"bbv: {text}\r\n".encode())


class Ring:
    """The last `size` bytes written, kept as the chunks they came in."""

    def __init__(self, size: int = RING_SIZE):
        self.size, self.total = size, 0
        self.chunks: deque[bytes] = deque()
        self.held = 0

    def append(self, data: bytes) -> None:
        self.chunks.append(data)
        self.held += len(data)
        self.total += len(data)
        while self.held > self.size:
            extra = self.held - self.size
            first = self.chunks[0]
            if len(first) <= extra:
                self.chunks.popleft()
                self.held -= len(first)
            else:
                self.chunks[0] = first[extra:]
                self.held -= extra

    def snapshot(self) -> bytes:
        return b"".join(self.chunks)


# -- the FIFOs QEMU writes and reads --------------------------------------------------------------
class ConsoleFifos:
    """PATH.in and PATH.out in a private (0700) directory in $TMPDIR, named after this process
    so that a later run can tell a leftover (its owner is dead) from one in use. bbv holds both
    FIFOs open read-write: neither open waits for QEMU, and the read side never sees EOF."""

    def __init__(self, tmpdir: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{FIFO_PREFIX}{os.getpid()}-", dir=tmpdir))
        self.base = self.dir / "con0"
        self.out_fd = self.in_fd = -1
        try:
            for suffix in (".in", ".out"):
                os.mkfifo(f"{self.base}{suffix}", 0o600)
            self.out_fd = os.open(f"{self.base}.out", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            self.in_fd = os.open(f"{self.base}.in", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.close()
            raise
        for fd in (self.out_fd, self.in_fd):
            enlarge_pipe(fd)

    def close(self) -> None:
        for fd in (self.out_fd, self.in_fd):
            if fd >= 0:
                os.close(fd)
        self.out_fd = self.in_fd = -1
        shutil.rmtree(self.dir, ignore_errors=True)


def enlarge_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """Grow the pipe buffer as far as the system lets this user; the size it got."""
    while size >= 65536:
        try:
            return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except (OSError, AttributeError):
            size //= 2
    return 65536


def fifo_dir_owner(name: str) -> int | None:
    """The pid in a FIFO directory's name (bbv-vc-PID-xxxx); None for any other name."""
    match = re.fullmatch(rf"{FIFO_PREFIX}(\d+)-\w+", name)
    return int(match[1]) if match else None


def clean_stale_fifo_dirs(tmpdir: str | None = None) -> list[Path]:
    """Remove this user's FIFO directories whose bbv died without cleaning up (SIGKILL)."""
    root = Path(tmpdir or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(FIFO_PREFIX)]
    except OSError:
        return removed
    for path in candidates:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        owner = fifo_dir_owner(path.name)
        if owner is not None and owner != os.getpid() and not pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# -- the socket clients connect to -----------------------------------------------------------------
def live_name() -> bytes:
    return LIVE_PREFIX + f"-{os.getpid()}-{os.urandom(6).hex()}".encode()


def connect_live(path: Path | str) -> socket.socket:
    """A blocking client socket to bbv's console server that gets no replay (bound to an
    abstract LIVE_PREFIX name); against any other server the binding does nothing."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(live_name())
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


class Client:
    def __init__(self, number: int, sock: socket.socket, replay: bytes):
        self.number, self.sock, self.fd = number, sock, sock.fileno()
        self.pending: deque[memoryview] = deque()
        self.backlog = 0
        self.reading = True  # until the client shuts down its sending side
        if replay:
            self.queue(replay)

    def queue(self, data: bytes) -> None:
        self.pending.append(memoryview(data))
        self.backlog += len(data)

    def flush(self) -> None:
        """Send what the socket takes now (raises OSError when the client is gone)."""
        while self.pending:
            chunk = self.pending[0]
            try:
                n = self.sock.send(chunk)
            except BlockingIOError:
                return
            self.backlog -= n
            if n < len(chunk):
                self.pending[0] = chunk[n:]
                return
            self.pending.popleft()


class ConsoleServer:
    """Start with start() (FIFOs and socket made, thread running); QEMU's chardev then is
    qemu_chardev(); close() stops the thread and removes the socket and the FIFOs."""

    def __init__(self, path: Path | None, log: BinaryIO | None = None, ring_size: int = RING_SIZE,
                 backlog: int = CLIENT_BACKLOG, tmpdir: str | None = None, paced: bool = False):
        self.path = None if path is None else Path(path)  # None: a socket in the FIFO dir
        self.log, self.backlog_max = log, backlog
        self.paced = paced  # QEMU records: input a byte at a time (ECHO_WAIT)
        self.typed: int | None = None  # paced: the last byte typed, until barebox echoes it
        self.next_byte: float | None = None  # paced: until then the last byte awaits its echo
        self.last_output = 0.0  # paced: time.monotonic() of the guest's last output
        self.ring = Ring(ring_size)
        self.tmpdir = tmpdir
        self.fifos: ConsoleFifos | None = None
        self.listener: socket.socket | None = None
        self.socket_ino: int | None = None
        self.clients: dict[int, Client] = {}
        self.to_guest = bytearray()
        self.numbered = 0
        self.thread: threading.Thread | None = None
        self.wake_r, self.wake_w = -1, -1
        self.error: BaseException | None = None
        self.closing = threading.Lock()

    @property
    def fifo_base(self) -> Path:
        assert self.fifos is not None
        return self.fifos.base

    def start(self) -> ConsoleServer:
        clean_stale_fifo_dirs(self.tmpdir)
        chosen = self.path is not None  # by the user (--console PATH), not in the FIFO dir
        if chosen:
            sockets.claim(self.path, f"--console {self.path}")
        try:
            self.fifos = ConsoleFifos(self.tmpdir)
            if not chosen:
                self.path = self.fifos.dir / "console.sock"
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.listener.bind(str(self.path))
            except OSError as exc:
                if not chosen:
                    raise
                self.close()
                raise UsageError(f"--console {self.path}: cannot make a unix socket there "
                                 f"({exc.strerror or exc}); choose a path in a directory of "
                                 "your own, such as $XDG_RUNTIME_DIR") from None
            self.socket_ino = self.path.lstat().st_ino
            self.listener.listen(16)
            self.listener.setblocking(False)
            self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self.close()
            raise BbvError(f"cannot serve the virtio console at {self.path}: "
                           f"{exc.strerror or exc}") from None
        self.thread = threading.Thread(target=self._run, name="bbv-console", daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        """Idempotent and thread-safe; from a finally block on any path, or from a thread that
        saw QEMU exit (the clients then get what is left and an end of file)."""
        with self.closing:
            self._close()

    def _close(self) -> None:
        if self.thread is not None:
            with contextlib.suppress(OSError):
                os.write(self.wake_w, b"x")
            self.thread.join(5)
            self.thread = None
        for client in list(self.clients.values()):
            client.sock.close()
        self.clients.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self._unlink_socket()
        if self.fifos is not None:
            self.fifos.close()
            self.fifos = None
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_r = self.wake_w = -1

    def follow(self, qemu) -> None:
        """Close when the QEMU process (a Popen) exits: its clients then get an end of file."""
        threading.Thread(target=lambda: (qemu.wait(), self.close()), daemon=True).start()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.close()

    def _unlink_socket(self) -> None:
        """Remove the socket file, unless something else has replaced it meanwhile."""
        if self.socket_ino is None:
            return
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self.socket_ino:
                self.path.unlink()
        self.socket_ino = None

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with selectors.PollSelector() as sel:
                self._loop(sel)
        except BaseException as exc:  # pragma: no cover - reported, never silent
            self.error = exc
            _note(f"virtio console server failed: {exc}")

    def _loop(self, sel: selectors.BaseSelector) -> None:
        assert self.fifos is not None and self.listener is not None
        sel.register(self.wake_r, READ)
        sel.register(self.fifos.out_fd, READ)
        sel.register(self.listener, READ)
        registered: dict[int, int] = {}
        while True:
            self._register(sel, registered)
            for key, mask in sel.select(self._typing_wait()):
                fd = key.fd
                if fd == self.wake_r:
                    self._last_words()
                    return
                if fd == self.fifos.out_fd:
                    self._drain_guest()
                elif fd == self.fifos.in_fd:
                    self._feed_guest()
                elif key.fileobj is self.listener:
                    self._accept()
                elif fd in self.clients:
                    client = self.clients[fd]
                    if mask & WRITE:
                        self._flush(client)
                    if mask & READ and fd in self.clients:
                        self._read_client(client)

    def _last_words(self) -> None:
        """Stopping: what QEMU wrote last goes out to the clients that take it within
        FAREWELL seconds."""
        self._drain_guest()
        deadline = time.monotonic() + FAREWELL
        with selectors.PollSelector() as sel:
            while True:
                waiting = {fd: c for fd, c in self.clients.items() if c.pending}
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    return
                for fd in waiting:
                    sel.register(fd, WRITE)
                for key, _ in sel.select(left):
                    if key.fd in self.clients:
                        self._flush(self.clients[key.fd])
                for fd in waiting:
                    sel.unregister(fd)

    def _register(self, sel: selectors.BaseSelector, registered: dict[int, int]) -> None:
        """Client and guest-input interest, which change with the buffers."""
        want: dict[int, int] = {}
        if self.to_guest and self._typing_wait() is None:
            want[self.fifos.in_fd] = WRITE
        take_input = len(self.to_guest) < INPUT_MAX
        for fd, client in self.clients.items():
            events = (READ if client.reading and take_input else 0) | \
                (WRITE if client.pending else 0)
            if events:
                want[fd] = events
        sync(sel, registered, want)

    def _drain_guest(self) -> None:
        for _ in range(16):  # then let the clients and input have a turn
            try:
                data = os.read(self.fifos.out_fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self.ring.append(data)
            if self.paced:
                self.last_output = time.monotonic()
                if self.typed is not None and (data[-1] == self.typed or self.typed < 0x20):
                    self.next_byte = self.typed = None  # echoed
            if self.log is not None:
                self._write_log(data)
            for client in list(self.clients.values()):
                client.queue(data)
                self._flush(client)
                if client.fd in self.clients and client.backlog > self.backlog_max:
                    self._drop(client, f"fell {client.backlog >> 10} KiB behind (not reading); "
                               "disconnected so that the console goes on")

    def _write_log(self, data: bytes) -> None:
        try:
            self.log.write(data)
        except OSError as exc:
            _note(f"cannot write the console log: {exc.strerror}; logging stops")
            self.log = None

    def _feed_guest(self) -> None:
        if self._typing_wait() is not None:
            return
        try:
            n = os.write(self.fifos.in_fd, self.to_guest[:1] if self.paced else self.to_guest)
        except BlockingIOError:
            return
        if self.paced and n:
            self.typed = self.to_guest[0]
            self.next_byte = time.monotonic() + ECHO_WAIT
        del self.to_guest[:n]

    def _typing_wait(self) -> float | None:
        """Paced input: seconds until the next byte may go, None when it may go now."""
        if not self.paced or not self.to_guest:
            return None
        now = time.monotonic()
        left = max(self.last_output + QUIET, self.next_byte or 0.0) - now
        return left if left > 0 else None

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    _note(f"cannot accept a console client: {exc.strerror}")
                    return
                raise
            sock.setblocking(False)
            live = isinstance(addr, bytes) and addr.startswith(LIVE_PREFIX)
            self.numbered += 1
            client = Client(self.numbered, sock, b"" if live else self.ring.snapshot())
            self.clients[client.fd] = client
            self._flush(client)

    def _flush(self, client: Client) -> None:
        try:
            client.flush()
        except OSError as exc:
            if exc.errno not in GONE:
                raise
            self._drop(client, None)

    def _read_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in GONE:
                raise
            data = b""
        if data:
            self.to_guest += data
            self._feed_guest()
            return
        # It may still read (socat after its stdin ends): it is dropped when a send fails.
        client.reading = False

    def _drop(self, client: Client, why: str | None) -> None:
        self.clients.pop(client.fd, None)
        if why:
            _note(f"virtio console client {client.number} {why}")
        client.sock.close()


def open_console_log(path: str | None) -> BinaryIO | None:
    """--console-log FILE, appended to (a rerun never overwrites an earlier log)."""
    if not path:
        return None
    try:
        return open(path, "ab", buffering=0)  # noqa: SIM115 - closed by its owner
    except OSError as exc:
        raise UsageError(f"--console-log {path}: {exc.strerror.lower()}") from None
