"""Helpers for the console tests: short socket dirs, real socat and QEMU peers, and a pty that
runs bbv with the test holding the terminal's other end."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import termios
import time
from contextlib import suppress
from pathlib import Path

from conftest import BBV

PATIENCE = 60.0  # seconds before a wait gives up: a hang guard, not a speed check


def short_dir() -> Path:
    """A directory whose socket paths stay well under the 107-byte limit."""
    return Path(tempfile.mkdtemp(prefix="bbvc", dir="/tmp"))


def wait_for(check, what: str):
    deadline = time.monotonic() + PATIENCE
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
    return result


def socat_listen(path: Path, peer: str, **popen) -> subprocess.Popen:
    """socat serving a unix socket at path, its other side being the socat address peer."""
    proc = subprocess.Popen(["socat", f"UNIX-LISTEN:{path},unlink-early", peer], **popen)
    wait_for(path.exists, f"socat to listen on {path}")
    return proc


def qemu_monitor(path: Path) -> subprocess.Popen:
    """A real QEMU chardev socket server (server=on,wait=off, as bbv run makes the console),
    with QEMU's human monitor behind it so that it answers what it is sent."""
    proc = subprocess.Popen(["qemu-system-arm", "-M", "none", "-S", "-nodefaults", "-display",
                             "none", "-chardev", f"socket,id=m,path={path},server=on,wait=off",
                             "-mon", "chardev=m"], stdin=subprocess.DEVNULL)
    wait_for(path.exists, f"QEMU to listen on {path}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Terminal:
    """bbv on a fresh pty: its stdin, stdout and stderr are the pty's terminal side, which the
    test keeps open to read its attributes; the test types and reads on the other side."""

    def __init__(self, args: list[str], stdout=None, stderr=None, **popen):
        self.master, self.slave = pty.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([*BBV, *args], stdin=self.slave,
                                     stdout=self.slave if stdout is None else stdout,
                                     stderr=self.slave if stderr is None else stderr,
                                     start_new_session=True, **popen)
        self.seen = b""

    def attrs(self) -> list:
        return termios.tcgetattr(self.slave)

    def raw_now(self) -> bool:
        lflag = self.attrs()[3]
        return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)

    def read_until(self, text: bytes) -> bytes:
        """Everything read up to and including text (which must come)."""
        deadline = time.monotonic() + PATIENCE
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no {text!r} on the terminal; got {self.seen[-500:]!r}")
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:
                raise AssertionError(f"terminal closed before {text!r}: {self.seen!r}") from None
        upto = self.seen.index(text) + len(text)
        out, self.seen = self.seen[:upto], self.seen[upto:]
        return out

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self) -> int:
        """The exit status, reading the terminal meanwhile so that bbv never blocks on it."""
        while self.proc.poll() is None:
            if select.select([self.master], [], [], 0.05)[0]:
                with suppress(OSError):  # EIO once bbv has gone
                    self.seen += os.read(self.master, 65536)
        return self.proc.wait()

    def close(self) -> None:
        stop(self.proc)
        os.close(self.master)
        os.close(self.slave)


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
