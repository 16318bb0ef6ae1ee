"""One QEMU run, from its command line to its exit: the one owner of a booting QEMU process,
like QEMU's own python/qemu/machine (QEMUMachine) and labgrid's QEMUDriver. Every mode of
`bbv run` (foreground, --attach, scripted, --dump-dtb) and quickstart's boot is a Machine:

- the command line, built from the run spec: the virtio console as the FIFOs of bbv's console
  server (console/server.py, in bbv; console/daemon.py, in a process of its own with
  --keep-running), set on the spec (console_pipe) before the command line is built;
- the serial line wired to this terminal (STDIO), to a relay on a pty (RELAY,
  console/serial.py), to a pty for a pexpect session (PTY, session/scripted.py), to a log file
  or socket with QEMU's messages in another log and a QMP socket (LOG, an attached run), to
  pipes (CAPTURE, --dump-dtb), or to pipes bbv reads as they come, QEMU in a session of its
  own (WATCH, bbv replay);
- the start under bbv's deferred-signal policy (util/signals.deferred,
  util/processes.start_child): whatever is started is owned before a signal is raised;
- one stop path (stop(): QMP `quit` where bbv holds QEMU's monitor, then SIGTERM, then
  SIGKILL) and one close(): QEMU stopped unless handed over (--keep-running), QMP client
  closed, sockets, FIFOs and an empty log removed;
- QEMU's own exit, or the signal that stopped bbv, as bbv's exit status (util/signals).

The short `-M none` queries of qemu/probe.py are not runs and stay there."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu import qmp
from barebox_virtio_cli.qemu.args import (
    RECORD,
    RunSpec,
    build_command,
    console_activation,
    flatten,
)
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.targets.target import Target
from barebox_virtio_cli.util import processes, sockets
from barebox_virtio_cli.util.paths import runtime_dir, state_dir
from barebox_virtio_cli.util.signals import (
    STOP_SIGNALS,
    announce_stop,
    deferred,
    exit_status,
    handling,
)
from barebox_virtio_cli.util.status import say

STDIO, RELAY, PTY, LOG, CAPTURE, WATCH = "stdio", "relay", "pty", "log", "capture", "watch"
START_TIMEOUT = 15.0  # seconds for QEMU to open its QMP socket
QUIT_WAIT = 5.0  # seconds for QEMU to exit after QMP quit, before SIGTERM
RECORD_STOP_WAIT = 30.0  # seconds for a recording QEMU to exit after SIGTERM, before SIGKILL
KEEP_LOGS = 10  # LOG runs per target whose log files stay in the state dir
_RUN_LOG = re.compile(r"(\d{8}-\d{6}-\d+)\.(?:serial|qemu)\.log|(\d+)\.console-server\.log")

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


def hint(text: str) -> str:
    """'; HINT' for the first of QEMU's messages in text bbv knows a hint for, else ''."""
    return next((f"; {h}" for pattern, h in HINTS if pattern in text), "")


class Machine:
    """Use as a context manager (start() on entry, close() on every way out), or call them.

    serial: STDIO, RELAY (give relay, a console.serial.SerialRelay), PTY (pty_fd: bbv's side),
    LOG (serial_log, qemu_log, qmp_path, and serial_sock where bbv must type the console's
    activation itself), CAPTURE or WATCH (binary pipes; no input). paused: QEMU starts with
    -S, for a caller that lets it go on over QMP. keep_running: the console server runs in its
    own process and QEMU may outlive bbv (hand_over()). announce: called once the console is
    served, before QEMU starts (a bad console path is then the only line said)."""

    def __init__(self, target: Target, info: QemuInfo, spec: RunSpec, serial: str = STDIO, *,
                 console_log: str | None = None, keep_running: bool = False,
                 paused: bool = False, relay=None, announce: Callable[[], None] | None = None):
        self.target, self.info = target, info
        self.wiring, self.relay = serial, relay
        self.console_log, self.keep_running, self.paused = console_log, keep_running, paused
        self.announce = announce  # says what boots, once the console is served: after errors
        self.manual = console_activation(target, info) == "manual"
        self.proc: subprocess.Popen | None = None
        self.server = None  # console/server.ConsoleServer or console/daemon.DetachedServer
        self.monitor = None  # bbv's QMP client (qemu/qmp.py) once connected
        self.pty_fd = -1
        self.handed_over = False
        self._log_file = None  # --console-log, for the server in bbv
        self.serial_log = self.qemu_log = self.serial_sock = None
        self.qmp_path = spec.qmp  # a QMP socket bbv's caller put on the spec (bbv replay)
        self.spec = self._log_spec(spec) if serial == LOG else spec

    def _log_spec(self, spec: RunSpec) -> RunSpec:
        """LOG: the serial line into a log file in the state dir (or onto a socket that bbv
        reads into it, where bbv types the activation: onto a pty while QEMU records), and a
        QMP socket."""
        name, pid = self.target.name, os.getpid()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        logged = state_dir() / "logs" / f"{name}-{stamp}-{pid}.serial.log"
        self.qemu_log = logged.with_suffix("").with_suffix(".qemu.log")
        # a recording's serial transcript is its own (QEMU writes it, the socket's too)
        self.serial_log = spec.serial_log or logged
        self.qmp_path = runtime_dir() / f"{name}-{pid}.qmp"
        if self.manual and spec.recording:
            # measured (QEMU 7.2, malta): a recording whose serial line is a socket server
            # does not replay ("Missing character write event"); one on QEMU's stdio does
            return replace(spec, qmp=self.qmp_path)
        self.serial_sock = runtime_dir() / f"{name}-{pid}.serial" if self.manual else None
        serial = (f"unix:{self.serial_sock},server=on,wait=off" if self.manual
                  else f"file:{self.serial_log}")
        return replace(spec, qmp=self.qmp_path, serial=serial)

    # -- the command line ------------------------------------------------------------------------
    def command(self) -> list[list[str]]:
        """QEMU's command line in option groups: the console on bbv's FIFOs once start() has
        opened the server, on QEMU's own socket before (what --dry-run prints, to paste)."""
        groups = build_command(self.target, self.spec, self.info)
        return groups + [["-S"]] if self.paused else groups

    @property
    def serial_on_pty(self) -> bool:
        """LOG, recorded, the activation typed by bbv: the serial line on QEMU's stdio, a pty
        whose other side (pty_fd) bbv reads and types on."""
        return self.wiring == LOG and self.manual and self.records

    @property
    def records(self) -> bool:
        """QEMU records this run (its typed input is paced: console/server.py)."""
        return self.spec.icount is not None and self.spec.icount.mode == RECORD

    @property
    def console_socket(self) -> Path | None:
        """Where clients reach the virtio console (bbv's server's socket)."""
        return None if self.server is None else Path(self.server.path)

    # -- start -----------------------------------------------------------------------------------
    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.close()

    def start(self) -> Machine:
        """The console server, then QEMU. A signal meanwhile waits until what was started is
        held here; then it is raised, after close() has stopped and removed it all. Once:
        a started machine is left as it is."""
        if self.proc is not None:
            return self
        try:
            with deferred() as check:
                self._serve()
                check()
                argv = flatten(self.command())  # checked (qemu/args.py): refused before a word
                if self.announce is not None:
                    self.announce()
                self.proc = self._spawn(argv)
                if self.server is not None:
                    self.server.follow(self.proc)  # QEMU gone: the clients get an end of file
        except BaseException:
            self.close()
            raise
        return self

    def _serve(self) -> None:
        if self.spec.console is None:
            return
        if self.keep_running:
            from barebox_virtio_cli.console.daemon import DetachedServer
            notes = state_dir() / "logs" / f"{self.target.name}-{os.getpid()}.console-server.log"
            self.server = DetachedServer(self.spec.console, self.console_log, notes,
                                         self.records, self._sockets())
        else:
            from barebox_virtio_cli.console.server import ConsoleServer, open_console_log

            self._log_file = open_console_log(self.console_log)
            self.server = ConsoleServer(self.spec.console, self._log_file, paced=self.records)
            self.server.start()
        self.spec.console_pipe = self.server.fifo_base

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        if self.wiring == STDIO:
            return processes.start_child(argv, stderr=subprocess.PIPE)
        if self.wiring == RELAY:
            try:
                return processes.start_child(argv, stdin=self.relay.slave,
                                             stdout=self.relay.slave, stderr=subprocess.PIPE)
            finally:
                self.relay.close_slave()
        if self.wiring == PTY or (self.wiring == LOG and self.serial_on_pty):
            import pty  # own session: terminal signals reach bbv only

            self.pty_fd, slave = pty.openpty()
            try:
                if self.wiring == PTY:
                    return processes.start_child(argv, stdin=slave, stdout=slave, stderr=slave,
                                                 start_new_session=True)
                self.qemu_log.parent.mkdir(parents=True, exist_ok=True)
                with open(self.qemu_log, "wb") as log:
                    return processes.start_child(
                        argv, die_with_bbv=not self.keep_running, stdin=slave, stdout=slave,
                        stderr=log, start_new_session=True)
            finally:
                os.close(slave)
        if self.wiring == LOG:  # own session; with --keep-running QEMU may outlive bbv
            self.qemu_log.parent.mkdir(parents=True, exist_ok=True)
            prune_logs(self.qemu_log.parent, self.target.name, KEEP_LOGS - 1)  # and this run
            with open(self.qemu_log, "wb") as log:
                return processes.start_child(
                    argv, die_with_bbv=not self.keep_running, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if self.wiring == WATCH:  # own session: terminal signals reach bbv only
            return processes.start_child(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        return processes.start_child(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def connect_monitor(self, check: Callable[[], None] = lambda: None):
        """bbv's QMP client once QEMU listens on qmp_path (LOG); check: a deferred signal's."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            check()
            self.check_alive()
            if self.qmp_path.exists():
                with contextlib.suppress(Exception):  # qemu.qmp wraps the OSError
                    self.monitor = qmp.connect_unix(self.qmp_path)
                    return self.monitor
            if time.monotonic() > deadline:
                raise BbvError(f"QEMU did not open {self.qmp_path} within {START_TIMEOUT:g} s; "
                               f"see {self.qemu_log}")
            time.sleep(0.05)

    def execute(self, command: str, **arguments) -> dict:
        return qmp.execute(self.monitor, command, **arguments)

    def check_alive(self) -> None:
        """A BbvError with QEMU's last message (LOG) if QEMU has exited already."""
        if self.proc.poll() is None:
            return
        text = self.qemu_log.read_text(errors="replace").strip() if self.qemu_log else ""
        last = text.splitlines()[-1] if text else "no message"
        raise BbvError(f"QEMU exited with status {self.proc.returncode} before the console was "
                       f"up: {last}{hint(text)}")

    # -- running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ended(self, grace: float = 0.3) -> bool:
        """Whether QEMU has exited, given a moment: its console closes before it can be reaped."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        return self.proc.returncode is not None

    def exit_status(self) -> int:
        """QEMU's exit as bbv's exit status: its code, or 128+N if signal N killed it."""
        return exit_status(self.proc.returncode)

    def foreground(self) -> int:
        """Start, run attached to this terminal (STDIO or RELAY) and close. The exit status is
        QEMU's, or 128+N when bbv was stopped by signal N: the signal stops QEMU (SIGTERM,
        on which QEMU exits 0) and is reported as bbv's. QEMU's messages pass through, with a
        hint where bbv knows one; the terminal is restored."""
        guard = processes.TerminalGuard()
        received: list[int] = []

        def on_signal(signum, _frame):
            received.append(signum)
            if self.running:
                self.proc.terminate()

        hints: list[str] = []
        relay = None
        with handling(STOP_SIGNALS, on_signal):
            try:
                self.start()
                if self.relay is not None:
                    self.relay.start()
                if received:  # a signal came while QEMU started
                    self.proc.terminate()
                relay = threading.Thread(target=_relay_stderr, args=(self.proc.stderr, hints),
                                         daemon=True)
                relay.start()
                self.proc.wait()
            finally:
                self.close()
                if self.relay is not None:
                    self.relay.stop()
                if relay is not None:
                    relay.join(2)
                guard.restore()
        for text in hints:
            say(f"hint: {text}")
        return announce_stop(received[0]) if received else self.exit_status()

    def hand_over(self) -> None:
        """--keep-running: QEMU (and the detached console server) outlive bbv; close() then
        leaves them."""
        self.handed_over = True

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """The one way bbv stops QEMU: QMP quit where bbv holds its monitor (a clean exit, in
        which QEMU removes its sockets), then SIGTERM, then SIGKILL; reaped either way."""
        if self.proc is None:
            return
        if self.monitor is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):  # QEMU gone, or it did not answer in time
                self.execute("quit")
                self.proc.wait(QUIT_WAIT)
        # A recording QEMU writes out its replay log on SIGTERM; killed, the log is lost.
        processes.stop(self.proc, RECORD_STOP_WAIT if self.records else QUIT_WAIT)

    def close(self) -> None:
        """Idempotent: QEMU stopped unless handed over, then the QMP client, the sockets QEMU
        made, the console server with its socket and FIFOs, the pty and an empty QEMU log."""
        try:
            if not self.handed_over:
                self.stop()
        finally:
            if self.monitor is not None:
                qmp.close(self.monitor)
                self.monitor = None
            if not self.handed_over:
                self._remove_sockets()
            if self.server is not None:
                self.server.close()  # a detached one stays while a handed-over QEMU runs
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            self.spec.console_pipe = None
            if self.pty_fd >= 0:
                os.close(self.pty_fd)
                self.pty_fd = -1
            if self.qemu_log is not None and self.proc is not None and not self.handed_over:
                with contextlib.suppress(OSError):
                    if self.qemu_log.stat().st_size == 0:
                        self.qemu_log.unlink()

    def _sockets(self) -> tuple[Path, ...]:
        """The sockets QEMU serves. It removes them when it exits cleanly; not when it is
        killed (or exits at once: riscv64's poweroff), so bbv (or, handed over, the detached
        console server) does."""
        return tuple(path for path in (self.qmp_path, self.serial_sock) if path is not None)

    def _remove_sockets(self) -> None:
        for path in self._sockets():
            sockets.remove(path)


def prune_logs(logs: Path, target: str, keep: int = KEEP_LOGS) -> None:
    """Remove the log files of all but the newest `keep` LOG (attached) runs of the target
    (each run writes a serial and a QEMU log, --keep-running a console server's too); the
    files of a bbv that still runs stay."""
    runs: dict[str, list[Path]] = {}
    for path in logs.glob(f"{glob.escape(target)}-*.log"):
        match = _RUN_LOG.fullmatch(path.name[len(target) + 1:])
        if match:
            runs.setdefault(match[1] or match[2], []).append(path)
    by_age = sorted(runs, key=lambda r: max(_mtime(f) for f in runs[r]), reverse=True)
    for run in by_age[keep:]:
        if processes.pid_alive(int(run.rsplit("-", 1)[-1])):
            continue
        for path in runs[run]:
            with contextlib.suppress(OSError):
                path.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _relay_stderr(stream, seen: list[str]) -> None:
    import sys

    # QEMU's -serial mon:stdio (or bbv's serial relay) may still hold the terminal raw, where a
    # bare LF leaves the cursor in its column: the shell's prompt would start at column ~100.
    crlf = os.isatty(2)
    for line in iter(stream.readline, b""):
        if crlf and line.endswith(b"\n") and not line.endswith(b"\r\n"):
            line = line[:-1] + b"\r\n"
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        text = line.decode(errors="replace")
        seen.extend(h for pattern, h in HINTS if pattern in text and h not in seen)
