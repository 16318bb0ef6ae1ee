"""Running QEMU in the foreground: signals forwarded, terminal restored, no orphans, and
QEMU's own error lines passed through with a hint where bbv knows one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

from barebox_virtio_cli.util.processes import start_child, stop
from barebox_virtio_cli.util.signals import STOP_SIGNALS, exit_status, handling, signal_status
from barebox_virtio_cli.util.status import say

HINTS = [
    ('Failed to get "write" lock', "another QEMU is using that image: stop it, or add --snapshot"),
    ("No 'virtio-bus' bus found", "more virtio devices than the machine has transports"),
    ("gtk initialization failed", "no display here: leave out --graphic"),
    ("Could not open", "check that the file exists and is readable"),
    ("Address already in use", "another process serves that socket path; choose another"),
    ("fw_cfg device not available", "this QEMU's fw_cfg is broken for the machine; drop --env"),
    ("failed to find romfile", "this QEMU build cannot find its ROM files: install it, or point "
     "it at them with --qemu-arg=-L --qemu-arg=DIR (DIR: pc-bios/ of its source tree)"),
    ("unsupported machine type", "this QEMU binary does not emulate the target's machine; "
     "--qemu must be a build of the target's QEMU"),
]


class _TerminalGuard:
    def __init__(self) -> None:
        self.fd = None
        self.attrs = None
        try:
            import termios

            if os.isatty(0):
                self.fd, self.attrs = 0, termios.tcgetattr(0)
        except (ImportError, OSError):
            pass

    def restore(self) -> None:
        if self.attrs is not None:
            import termios

            with contextlib.suppress(OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.attrs)


def _relay_stderr(stream, seen: list[str]) -> None:
    # QEMU's -serial mon:stdio (or bbv's serial relay) may still hold the terminal raw, where a
    # bare LF leaves the cursor in its column: the shell's prompt would start at column ~100.
    crlf = os.isatty(2)
    for line in iter(stream.readline, b""):
        if crlf and line.endswith(b"\n") and not line.endswith(b"\r\n"):
            line = line[:-1] + b"\r\n"
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        text = line.decode(errors="replace")
        seen.extend(hint for pattern, hint in HINTS if pattern in text and hint not in seen)


def start(argv: list[str], stdin=None, stdout=None) -> subprocess.Popen:
    return start_child(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)


def run_foreground(argv: list[str], serial=None) -> int:
    """Run QEMU attached to this terminal; its exit status the way a shell reports it, or
    128+N when bbv was stopped by signal N (QEMU gets SIGTERM). `serial`: a
    console.serial.SerialRelay that sits between QEMU's stdio and the terminal."""
    guard = _TerminalGuard()
    received: list[int] = []
    running: list[subprocess.Popen] = []

    def on_signal(signum, _frame):
        received.append(signum)
        if running and running[0].poll() is None:
            running[0].terminate()

    hints: list[str] = []
    with handling(STOP_SIGNALS, on_signal):
        if serial is not None:
            try:
                proc = start(argv, stdin=serial.slave, stdout=serial.slave)
            finally:
                serial.close_slave()
            serial.start()
        else:
            proc = start(argv)
        running.append(proc)
        if received:  # a signal came while QEMU started
            proc.terminate()
        relay = threading.Thread(target=_relay_stderr, args=(proc.stderr, hints), daemon=True)
        relay.start()
        try:
            returncode = proc.wait()
        finally:
            stop(proc)
            if serial is not None:
                serial.stop()
            relay.join(2)
            guard.restore()
    for hint in hints:
        say(f"hint: {hint}")
    # QEMU exits 0 on the SIGTERM bbv passes on; bbv reports the signal that stopped it.
    return signal_status(received[0]) if received else exit_status(returncode)

