"""A scripted barebox session in QEMU, driven with pexpect: boot, stop autoboot, run commands at
the prompt on the serial or the virtio console, check the expectations, and always stop QEMU.

QEMU (a qemu/machine.Machine) has its serial port on a pty; the virtio console is bbv's console
server (console/server.py: QEMU writes FIFOs, never a socket, so nothing is dropped), which the
session joins as a client without replay. pexpect (fdpexpect, on both) is imported only here,
so `bbv run` without --exec never loads it."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from barebox_virtio_cli.console.server import connect_live
from barebox_virtio_cli.session import shell as sh
from barebox_virtio_cli.session.report import (
    ERROR,
    FAILED,
    PASSED,
    TIMEOUT,
    GuestTime,
    ScriptResult,
    Step,
    check_expectations,
)

_PEXPECT_OPTIONS = dict(encoding="utf-8", codec_errors="replace", searchwindowsize=2000)


@dataclass
class Script:
    commands: list[str]
    expectations: list[str] = field(default_factory=list)
    timeout: float = 30.0  # for the boot up to the prompt, and for each command
    virtio: bool = False  # talk on the virtio console instead of the serial
    activation: str | None = None  # typed on the serial first if barebox does not activate it
    pace: float = 0.0  # seconds between typed characters (qemu/args.RECORD_TYPING_PACE)
    window: int = 0  # characters typed ahead of barebox's echo (qemu/args.RECORD_TYPING_WINDOW)
    guest_time: bool = False  # read boot to prompt in guest time (--deterministic)


class SessionEnded(Exception):
    """The session cannot go on (a timeout, QEMU gone); the message says where it stopped."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


class _Transcript:
    """Everything read from one console (pexpect's logfile_read), also written to tee."""

    def __init__(self, tee: BinaryIO | None = None) -> None:
        self.parts: list[str] = []
        self.tee = tee

    def write(self, text: str) -> None:
        self.parts.append(text)
        if self.tee is not None:
            self.tee.write(text.encode())

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


class Shell:
    """barebox's shell on one console, a pexpect fdspawn (the serial pty, a console socket)."""

    def __init__(self, child, label: str, send: Callable[[str], object] | None = None,
                 tee: BinaryIO | None = None, window: int = 0):
        self.child, self.label, self.send = child, label, send or child.send
        self.window = window  # 0: a line is typed at once
        self.transcript = _Transcript(tee)
        child.logfile_read = self.transcript
        child.delaybeforesend = None  # pexpect's default 50 ms pause is for password prompts
        self.nonce = secrets.token_hex(sh.NONCE_LENGTH // 2)
        self.sent = 0  # command lines typed

    def expect(self, pattern: str | list[str], timeout: float, waiting_for: str,
               limit: float | None = None) -> int:
        """Wait up to timeout seconds; limit is the time the user gave, for the message."""
        import pexpect

        try:
            return self.child.expect([pattern] if isinstance(pattern, str) else pattern,
                                     timeout=max(timeout, 0.1))
        except pexpect.TIMEOUT:
            raise SessionEnded(TIMEOUT, f"timed out after {limit or timeout:g} s waiting for "
                               f"{waiting_for} on the {self.label}") from None
        except pexpect.EOF:
            raise SessionEnded(ERROR, f"QEMU exited while bbv waited for {waiting_for} on the "
                               f"{self.label}") from None

    def stop_autoboot(self, timeout: float) -> str:
        """Wait for the autoboot countdown (stopping it) or the prompt; return the boot log."""
        deadline = time.monotonic() + timeout
        index = self.expect([sh.AUTOBOOT, sh.PROMPT], timeout,
                            "the autoboot countdown or the barebox prompt")
        log = self.child.before + self.child.after
        if index == 0:
            self.send(sh.abort_key(self.child.match.group(1)))
            self.expect(sh.PROMPT, deadline - time.monotonic(), "the barebox prompt", timeout)
            log += self.child.before
        return sh.clean(log)

    def run(self, command: str, timeout: float) -> tuple[str, int]:
        """Type the command at the prompt; its output and exit status once the prompt is back."""
        self.type_line(sh.command_line(command, self.nonce), timeout)
        self.sent += 1
        self.expect(sh.status_pattern(self.nonce), timeout, f"'{sh.shorten(command)}' to finish")
        output, status = sh.command_output(self.child.before), int(self.child.match.group(1))
        self.expect(sh.PROMPT, timeout, "the barebox prompt")
        return output, status

    def type_line(self, line: str, timeout: float) -> None:
        """Type the line and Enter; with a window, at most that many characters ahead of what
        barebox echoed. Under record QEMU hands typed keys to the guest in batches at its
        checkpoints, a second or more apart on a busy host, without asking the UART for room:
        the PL011 keeps 16 and the 17th overwrote the first."""
        if not self.window:
            self.send(line + "\n")
            return
        for start in range(0, len(line), self.window):
            chunk = line[start:start + self.window]
            self.send(chunk)
            self.expect(re.escape(chunk), timeout, "barebox's echo of the typed line")
        self.send("\n")


class _Drain:
    """Reads the serial console in the background while the session runs on the virtio console:
    barebox prints to every console, and QEMU stalls the guest when nobody reads the serial."""

    def __init__(self, child) -> None:
        self.child, self.stopping = child, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        import pexpect

        while not self.stopping.is_set():
            try:
                self.child.read_nonblocking(4096, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)


def run_session(machine, script: Script, on_step: Callable[[Step], None] | None = None,
                before_stop: Callable[[], None] | None = None) -> ScriptResult:
    """Start the machine unless started (qemu/machine.py, PTY: the serial line on -serial
    mon:stdio, where Ctrl-C, the autoboot abort key, reaches the guest) and run the script;
    the machine stops QEMU on every way out. before_stop runs while QEMU is still up, after
    the script (e.g. a screendump)."""
    result = ScriptResult(machine.target.name, "virtio" if script.virtio else "serial",
                          commands=[Step(command) for command in script.commands])
    started = time.monotonic()
    machine.start()
    shells: list[Shell] = []
    drain = None
    interrupted = True  # by a signal or an error: then no before_stop
    try:
        serial = fd_shell(os.dup(machine.pty_fd), machine.pty_fd, "serial console",
                          script.timeout, pace=script.pace,
                          window=script.window)  # pexpect closes its copy
        shells.append(serial)
        session, step = serial, result.boot
        step_started = time.monotonic()
        result.boot.output = serial.stop_autoboot(script.timeout)
        if script.virtio:
            session = _virtio_shell(serial, script, machine.console_socket)
            shells.append(session)
            drain = _Drain(serial.child)
            _sync(session, script)
        if script.guest_time:
            result.guest_time = _guest_time(session, result.boot.output, script.timeout)
        _finish(step, step_started, 0, on_step)
        for step in result.commands:
            step_started = time.monotonic()
            step.output, status = session.run(step.command, script.timeout)
            _finish(step, step_started, status, on_step)
        interrupted = False
    except SessionEnded as exc:
        interrupted = False
        message = str(exc) + ("" if session is serial else _lost_output_note(serial, session))
        step.status, step.message, result.error = exc.status, message, message
        step.duration = _since(step_started)
        if not step.output:  # what the step printed before it got stuck
            partial = session.child.before if isinstance(session.child.before, str) else ""
            step.output = sh.clean(serial.transcript.text()) if step.command is None \
                else sh.command_output(partial)
        result.last_lines = sh.last_lines(session.transcript.text()) or \
            sh.last_lines(serial.transcript.text())
    finally:
        if before_stop is not None and not interrupted and machine.running:
            before_stop()
        if drain is not None:
            drain.stop()
        machine.close()
        for shell in shells:
            shell.child.close()
    result.duration = _since(started)
    check_expectations(result, script.expectations)
    return result


def _guest_time(shell: Shell, boot_log: str, timeout: float) -> GuestTime | None:
    """barebox's own timestamp of its last boot message (shell.last_boot_message): under
    -icount the same every run, where anything bbv reads when it sees the prompt is not."""
    dmesg, status = shell.run(sh.DMESG, timeout)
    found = sh.last_boot_message(dmesg, boot_log) if status == 0 else None
    return None if found is None else GuestTime(*found)


def _lost_output_note(serial: Shell, virtio: Shell) -> str:
    """barebox echoes the virtio session on the serial console too (unless cs0 is off): if the
    serial shows the last command finished, its output was lost on the virtio console (see
    console/server.py: only if bbv's server thread left the 1 MiB FIFO unread for long)."""
    seen = sh.statuses(serial.transcript.text(), virtio.nonce)
    if virtio.sent == 0 or len(seen) < virtio.sent:
        return ""
    return (f"; the serial console shows it finished (exit status {seen[virtio.sent - 1]}), so "
            "QEMU dropped virtio console output, as it does when the host is too busy for bbv "
            "to keep up: retry on a less loaded host")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _finish(step: Step, started: float, status: int,
            on_step: Callable[[Step], None] | None) -> None:
    step.duration = _since(started)
    step.exit_status = None if step.command is None else status
    step.status = PASSED if status == 0 else FAILED
    if status:
        step.message = f"exit status {status}"
    if on_step is not None:
        on_step(step)


def _virtio_shell(serial: Shell, script: Script, socket_path: Path) -> Shell:
    if script.activation:
        output, status = serial.run(script.activation, script.timeout)
        if status:
            raise SessionEnded(ERROR, f"'{script.activation}' failed on the serial console "
                               f"(exit status {status}): {output.strip()}")
    try:
        fd = connect_live(socket_path).detach()  # fdspawn owns and closes the fd
    except OSError as exc:
        raise SessionEnded(ERROR, f"cannot connect to the virtio console {socket_path}: "
                           f"{exc.strerror}") from None
    return fd_shell(fd, fd, "virtio console", script.timeout)


def fd_shell(read_fd: int, write_fd: int, label: str, timeout: float,
             tee: BinaryIO | None = None, pace: float = 0.0, window: int = 0) -> Shell:
    """barebox's shell on a console bbv reaches through file descriptors (a socket, a pty);
    pace: seconds between typed characters (0: as one write); window: Shell.type_line."""
    import pexpect.fdpexpect

    child = pexpect.fdpexpect.fdspawn(read_fd, timeout=timeout, **_PEXPECT_OPTIONS)
    return Shell(child, label, send=lambda text: _type(write_fd, text.encode(), pace), tee=tee,
                 window=window)


def _type(fd: int, data: bytes, pace: float) -> None:
    if not pace:
        _write_all(fd, data)
        return
    for byte in data:
        _write_all(fd, bytes([byte]))
        time.sleep(pace)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def activate(shell: Shell, command: str, timeout: float) -> None:
    """Stop autoboot, wait for the prompt, type the command that activates another console and
    wait for the prompt again: session/shell.Activator's steps (the serial relay feeds the same
    ones), fed what the console prints. No status marker (Shell.run): once active, the other
    console shows what the command prints, and the user is on it."""
    import pexpect

    activator = sh.Activator(command)
    deadline = time.monotonic() + timeout
    while not activator.done:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise pexpect.TIMEOUT("")
            data = shell.child.read_nonblocking(65536, timeout=left)
        except pexpect.TIMEOUT:
            raise SessionEnded(TIMEOUT, f"timed out after {timeout:g} s waiting for the barebox "
                               f"prompt on the {shell.label}") from None
        except pexpect.EOF:
            raise SessionEnded(ERROR, "QEMU exited while bbv waited for the barebox prompt on "
                               f"the {shell.label}") from None
        reply = activator.feed(data if isinstance(data, str) else data.decode(errors="replace"))
        if reply:
            shell.send(reply.decode())


def drain(shell: Shell) -> None:
    """Read the console until it closes (what is read goes to the shell's transcript/tee)."""
    import pexpect

    while True:
        try:
            shell.child.read_nonblocking(65536, timeout=None)
        except (pexpect.EOF, OSError, ValueError):
            return


def _sync(shell: Shell, script: Script) -> None:
    """One command whose answer shows the virtio console works; what came before is dropped."""
    try:
        shell.run("true", script.timeout)
    except SessionEnded as exc:
        if exc.status != TIMEOUT:
            raise
        raise SessionEnded(TIMEOUT, f"no answer on the virtio console within "
                           f"{script.timeout:g} s: is CONFIG_VIRTIO_CONSOLE in this barebox, "
                           "and the console active?") from None
