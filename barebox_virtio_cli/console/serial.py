"""The serial console relayed between QEMU and the user's terminal, for a foreground boot of a
target that cannot activate the virtio console at boot (malta: no fw_cfg). QEMU's stdio is a
pty; a thread copies it to the terminal and the keys back, and types the activation command
(`cs2.active=ioe`) at barebox's first prompt, so nobody has to. QEMU still sees a terminal, so
Ctrl-A X, Ctrl-A C and Ctrl-C behave as with -serial mon:stdio on the terminal itself.

The thread always reads the pty: QEMU blocks the guest when its serial output is not read
(facts sheet, item 14). Output the terminal does not take is held up to TERMINAL_BACKLOG and
then dropped, with a note, rather than stalling barebox."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import selectors
import termios
import threading
import tty
from collections import deque

from barebox_virtio_cli.console.relay import _private_fd
from barebox_virtio_cli.qemu.args import activation_command, console_activation
from barebox_virtio_cli.session.shell import Activator
from barebox_virtio_cli.util.selector import sync

TERMINAL_BACKLOG = 1 << 20
KEYS_MAX = 64 << 10
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _note(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"\r\nbbv: {text}\r\n".encode())


class SerialRelay:
    """start() after QEMU is spawned on `slave` (then close_slave()); stop() after it exits."""

    def __init__(self, activation: str | None):
        self.master, self.slave = pty.openpty()
        self.terminal = os.isatty(0)
        if self.terminal:
            with contextlib.suppress(OSError):
                size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(self.slave, termios.TIOCSWINSZ, size)
        os.set_blocking(self.master, False)
        self.activator = Activator(activation) if activation else None
        self.in_fd = _private_fd(0, os.O_RDONLY)
        self.out_fd = _private_fd(1, os.O_WRONLY)
        self.to_terminal: deque[memoryview] = deque()
        self.backlog = 0
        self.dropped = 0
        self.to_qemu = bytearray()
        self.stdin_open = True
        self.pty_open = True
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.saved = None
        self.thread = threading.Thread(target=self._run, name="bbv-serial", daemon=True)

    def start(self) -> None:
        if self.terminal:
            self.saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        self.thread.start()

    def close_slave(self) -> None:
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def stop(self) -> None:
        """After QEMU has exited: copy what it printed last, restore the terminal."""
        if self.thread.is_alive():
            with contextlib.suppress(OSError):
                os.write(self.wake_w, b"x")
            self.thread.join(5)
        self.close_slave()
        if self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            self.saved = None
        for fd in (self.master, self.in_fd, self.out_fd, self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        with selectors.PollSelector() as sel:
            registered: dict[int, int] = {}
            while True:
                self._register(sel, registered)
                for key, mask in sel.select():
                    if key.fd == self.wake_r:
                        self._last_words()
                        return
                    if key.fd == self.master:
                        if mask & WRITE:
                            self._send_keys()
                        if mask & READ:
                            self._read_qemu()
                    elif key.fd == self.in_fd:
                        self._read_keys()
                    elif key.fd == self.out_fd:
                        self._write_terminal()

    def _register(self, sel: selectors.BaseSelector, registered: dict[int, int]) -> None:
        want = {self.wake_r: READ}
        if self.pty_open:
            want[self.master] = READ | (WRITE if self.to_qemu else 0)
        if self.stdin_open and self.pty_open and len(self.to_qemu) < KEYS_MAX:
            want[self.in_fd] = READ
        if self.to_terminal:
            want[self.out_fd] = WRITE
        sync(sel, registered, want)

    def _read_qemu(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: QEMU has closed its side
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.pty_open = False
            return
        if self.activator is not None and not self.activator.done:
            reply = self.activator.feed(data.decode(errors="replace"))
            if reply:
                self.to_qemu += reply
        self.to_terminal.append(memoryview(data))
        self.backlog += len(data)
        if self.backlog > TERMINAL_BACKLOG:
            self.dropped += self.backlog
            self.to_terminal.clear()
            self.backlog = 0
            _note(f"the terminal fell behind; {self.dropped} bytes of serial output dropped so "
                  "far so that barebox does not stall")
        self._write_terminal()

    def _write_terminal(self) -> None:
        while self.to_terminal:
            chunk = self.to_terminal[0]
            try:
                n = os.write(self.out_fd, chunk)
            except BlockingIOError:
                return
            except OSError:  # the terminal is gone: keep draining QEMU, show nothing
                self.to_terminal.clear()
                self.backlog = 0
                return
            self.backlog -= n
            if n < len(chunk):
                self.to_terminal[0] = chunk[n:]
                return
            self.to_terminal.popleft()

    def _read_keys(self) -> None:
        try:
            data = os.read(self.in_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stdin_open = False
            return
        self.to_qemu += data
        self._send_keys()

    def _send_keys(self) -> None:
        try:
            n = os.write(self.master, self.to_qemu)
        except BlockingIOError:
            return
        except OSError:
            self.to_qemu.clear()
            return
        del self.to_qemu[:n]

    def _last_words(self) -> None:
        """QEMU has exited: what is left in the pty, then whatever the terminal takes."""
        while self.pty_open:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.to_terminal.append(memoryview(data))
        with contextlib.suppress(OSError):
            os.set_blocking(self.out_fd, True)
            for chunk in self.to_terminal:
                os.write(self.out_fd, chunk)
        self.to_terminal.clear()


def foreground_serial(target, info, spec) -> SerialRelay | None:
    """A relay when bbv must type the activation on the serial line; None: QEMU's stdio is the
    terminal itself."""
    if spec.console is None or spec.serial != "mon:stdio" or \
            console_activation(target, info) != "manual":
        return None
    return SerialRelay(activation_command(target))
