"""Real barebox printing tens of KiB on its virtio console, read by a client, compared byte for
byte with what barebox printed on its serial console in the same run (QEMU blocks the guest
rather than drop serial output, so the serial line is the reference). Used by
tests/barebox/test_console_loss.py and benchmarks/console_loss.py.

Two setups: 'relay' is `bbv run --console SOCK` (bbv serves the console from QEMU's FIFOs);
'qemu' is the command line `bbv run --dry-run` prints (QEMU's own socket chardev)."""

from __future__ import annotations

import os
import pty
import re
import shlex
import subprocess
import sys
import termios
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from console_helpers import stop

BBV = [sys.executable, "-m", "barebox_virtio_cli"]
ROUNDS = 8
# BEGIN/END are split by quotes so that the echoed command line does not contain them.
WORKLOAD = ('echo "BE""GIN"; ' + "devinfo; ls -l /dev; help; " * ROUNDS + 'echo "EN""D"\n')
PROMPT = re.compile(rb"barebox@[^\n]*:\S*\x1b\[0m $")
# Under load barebox's pollers warn ("WARNING: poller: 'net' takes unexpectedly long: 29ms") in
# the middle of other output, at a different byte on each console. On the virtio console a byte
# next to such a warning can come out garbled ("nnexpectedly"): barebox prints it from a poller
# that runs while put_chars waits for the host, re-entering the driver with a buffer in flight.
# The warnings are left out of the comparison; garbled bytes are counted apart from lost ones.
POLLER_WARNING = re.compile(rb"(\x1b\[1;33m)?WARNING:(\x1b\[0m)? poller: [^\r\n]*?ms\r+\n")
ACTIVATION = {"malta": "cs2.active=ioe"}  # targets without fw_cfg, for the 'qemu' setup


class Drain(threading.Thread):
    """Reads an fd into `data` until it ends."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.data, self.lock = fd, bytearray(), threading.Lock()
        self.start()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def snapshot(self) -> bytes:
        with self.lock:
            return bytes(self.data)

    def wait_for(self, pattern: bytes | re.Pattern, timeout: float, start: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.snapshot()[start:]
            if (pattern.search(data) if isinstance(pattern, re.Pattern) else pattern in data):
                return True
            time.sleep(0.05)
        return False


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@dataclass
class Result:
    expected: int  # bytes barebox printed between BEGIN and END (on the serial console)
    received: int  # of those, what the virtio console client got
    identical: bool  # byte for byte, poller warnings left out
    missing: list[bytes]  # serial lines the client did not get as they are (lost or garbled)
    warnings: int  # poller warnings on the virtio console in this run

    @property
    def lost(self) -> int:
        """Bytes that never arrived (a garbled byte is not lost)."""
        return max(0, self.expected - self.received)


def lines_lost(reference: bytes, got: bytes) -> list[bytes]:
    """Lines of the reference missing from got (as multisets)."""
    from collections import Counter

    have = Counter(got.splitlines(keepends=True))
    missing = []
    for line in reference.splitlines(keepends=True):
        if have[line]:
            have[line] -= 1
        else:
            missing.append(line)
    return missing


def segment(data: bytes) -> bytes | None:
    """The output from the BEGIN line to the END line (None if BEGIN never came)."""
    start = data.find(b"BEGIN\r\n")
    if start < 0:
        return None
    end = data.find(b"END\r\n", start)
    return data[start:] if end < 0 else data[start:end + 5]


class Boot:
    """barebox in QEMU, the serial console on a pty drained here, and a virtio console client
    (`bbv console --no-replay` or socat) on pipes."""

    def __init__(self, setup: str, target: str, image: str, sock: Path, client: str):
        self.setup, self.target, self.sock = setup, target, sock
        base = [*BBV, "run", "--target", target, "--image", image, "--console", str(sock)]
        if setup == "relay":
            argv = base
        else:
            printed = subprocess.run([*base, "--dry-run"], capture_output=True, text=True,
                                     check=True).stdout
            argv = shlex.split(printed.replace("\\\n", " "))
        master, slave = pty.openpty()
        attrs = termios.tcgetattr(slave)  # QEMU keeps OPOST on its stdio: no \n -> \r\n here
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.master = master
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.serial = Drain(master)
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"no console socket; serial: {self.serial.snapshot()[-500:]!r}")
            time.sleep(0.05)
        if setup == "qemu" and target in ACTIVATION:
            self._activate(ACTIVATION[target])
        cmd = [*BBV, "console", "--no-replay", str(sock)] if client == "bbv" else \
            ["socat", f"UNIX-CONNECT:{sock}", "-"]
        self.client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.virtio = Drain(self.client.stdout.fileno())

    def _activate(self, command: str) -> None:
        """What bbv does for the 'relay' setup on malta: a key at autoboot, then the command."""
        if not self.serial.wait_for(b"stop autoboot", 60):
            raise RuntimeError("no autoboot countdown on the serial console")
        os.write(self.master, b"\n")
        self.serial.wait_for(PROMPT, 30)
        os.write(self.master, command.encode() + b"\n")

    def type(self, text: bytes) -> None:
        self.client.stdin.write(text)
        self.client.stdin.flush()

    def prompt(self, timeout: float = 90) -> None:
        """Keys on the virtio console until barebox answers there with a prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mark = len(self.virtio.snapshot())
            self.type(b"\n")
            if self.virtio.wait_for(PROMPT, 1.0, mark):
                time.sleep(0.3)  # the rest of the autoboot fallout
                return
        raise RuntimeError(f"no prompt on the virtio console; got "
                           f"{self.virtio.snapshot()[-300:]!r}")

    def measure(self, timeout: float = 120) -> Result:
        serial_mark, virtio_mark = len(self.serial.snapshot()), len(self.virtio.snapshot())
        self.type(WORKLOAD.encode())
        if not self.serial.wait_for(re.compile(rb"END\r+\n"), timeout, serial_mark):
            raise RuntimeError("the workload did not finish on the serial console")
        self.virtio.wait_for(b"END\r\n", 5, virtio_mark)
        # bbv's own pty on malta keeps ONLCR, as a terminal QEMU writes to directly does
        serial = self.serial.snapshot()[serial_mark:].replace(b"\r\r\n", b"\r\n")
        reference = POLLER_WARNING.sub(b"", segment(serial) or b"")
        got = segment(self.virtio.snapshot()[virtio_mark:])
        if got is None:  # BEGIN lost: count what came after the echoed command line
            got = self.virtio.snapshot()[virtio_mark:].split(b"\n", 1)[-1]
        got, warnings = POLLER_WARNING.subn(b"", got)
        return Result(len(reference), len(got), got == reference, lines_lost(reference, got),
                      warnings)

    def close(self) -> None:
        for proc in (self.client, self.proc):
            stop(proc)
        with suppress(OSError):
            os.close(self.master)
