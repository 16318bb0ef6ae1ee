"""bbv run --attach: QEMU in the background (paused until the console is connected), bbv's
console server (console/server.py) between QEMU's FIFOs and the socket, the console relay in the
foreground as its first client, QEMU stopped and sockets removed after. With --keep-running QEMU
outlives bbv, and so does the server: it runs in a process of its own (console/daemon.py) until
QEMU exits.

Targets that cannot activate the virtio console at boot ('manual': no fw_cfg) get their serial
line on a socket that bbv reads into the log while it types the activation command itself."""

from __future__ import annotations

import glob
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import replace
from pathlib import Path

from barebox_virtio_cli.console.relay import (
    Conn,
    EndpointError,
    Options,
    connect,
    run_console,
)
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu.args import (
    RunSpec,
    activation_command,
    boot_source,
    build_command,
    console_activation,
    flatten,
)
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util.signals import Signalled, deferred, exit_status
from barebox_virtio_cli.util.sockets import Endpoint
from barebox_virtio_cli.util.status import say

START_TIMEOUT = 15.0  # seconds for QEMU to create its sockets
ACTIVATE_TIMEOUT = 60.0  # seconds for barebox to reach a prompt on the serial line


class Session:
    """The files of one attached run: logs in the state dir, sockets in the runtime dir."""

    def __init__(self, target: Target, spec: RunSpec, manual: bool):
        from barebox_virtio_cli.util.paths import runtime_dir, state_dir

        logs = state_dir() / "logs"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.serial_log = logs / f"{target.name}-{stamp}-{os.getpid()}.serial.log"
        self.qemu_log = self.serial_log.with_suffix("").with_suffix(".qemu.log")
        run = runtime_dir()
        self.console = spec.console
        self.qmp = run / f"{target.name}-{os.getpid()}.qmp"
        self.serial_sock = run / f"{target.name}-{os.getpid()}.serial" if manual else None
        serial = (f"unix:{self.serial_sock},server=on,wait=off" if manual
                  else f"file:{self.serial_log}")
        self.spec = replace(spec, qmp=self.qmp, serial=serial)

    def sockets(self) -> list[Path]:
        return [p for p in (self.console, self.qmp, self.serial_sock) if p is not None]

    def remove_sockets(self) -> None:
        """QEMU removes them when it exits cleanly; not when it is killed."""
        for path in self.sockets():
            with suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()


KEEP_LOGS = 10  # attached runs per target whose log files stay in the state dir
_RUN_LOG = re.compile(r"(\d{8}-\d{6}-\d+)\.(?:serial|qemu)\.log|(\d+)\.console-server\.log")


def prune_logs(logs: Path, target: str, keep: int = KEEP_LOGS) -> None:
    """Remove the log files of all but the newest `keep` attached runs of the target (each
    run writes a serial and a QEMU log, --keep-running a console server's too); the files of a
    bbv that still runs stay."""
    from barebox_virtio_cli.util.processes import pid_alive

    runs: dict[str, list[Path]] = {}
    for path in logs.glob(f"{glob.escape(target)}-*.log"):
        match = _RUN_LOG.fullmatch(path.name[len(target) + 1:])
        if match:
            runs.setdefault(match[1] or match[2], []).append(path)
    by_age = sorted(runs, key=lambda r: max(_mtime(f) for f in runs[r]), reverse=True)
    for run in by_age[keep:]:
        if pid_alive(int(run.rsplit("-", 1)[-1])):
            continue
        for path in runs[run]:
            with suppress(OSError):
                path.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def attach_command(target: Target, info: QemuInfo, spec: RunSpec) -> list[list[str]]:
    """The QEMU command line of an attached run as --attach --dry-run prints it: without the
    -S that holds QEMU until bbv's console is up, since a pasted command has no bbv to let
    it go on."""
    session = Session(target, spec, console_activation(target, info) == "manual")
    return build_command(target, session.spec, info)


def _groups(target: Target, info: QemuInfo, spec: RunSpec) -> list[list[str]]:
    return build_command(target, spec, info) + [["-S"]]  # paused until the console is up


def attach_run(target: Target, info: QemuInfo, spec: RunSpec, keep_running: bool,
               console_log: str | None = None) -> int:
    def serve():
        """The console server's context: in bbv, or with --keep-running in its own process."""
        if keep_running:
            from barebox_virtio_cli.console.daemon import detached_console
            from barebox_virtio_cli.util.paths import state_dir

            notes = state_dir() / "logs" / f"{target.name}-{os.getpid()}.console-server.log"
            return detached_console(spec, console_log, notes)
        from barebox_virtio_cli.console.server import served_console

        return served_console(spec, console_log)

    with ExitStack() as stack:  # the server closes after QEMU is stopped (or handed over)
        return _attach(target, info, spec, keep_running, lambda: stack.enter_context(serve()))


def _attach(target: Target, info: QemuInfo, spec: RunSpec, keep_running: bool,
            open_server: Callable[[], object]) -> int:
    manual = console_activation(target, info) == "manual"
    from barebox_virtio_cli.qemu.qmp import execute as qmp_execute

    server = session = proc = qmp = watcher = None
    started = False
    status = 1
    try:
        # Until QEMU runs, a signal waits for a safe point: QEMU and the server are never
        # left unowned, and it is never raised where it would be swallowed (qemu.qmp's
        # asyncio, a finalizer that the garbage collector runs meanwhile).
        with deferred() as check:
            server = open_server()
            session = Session(target, spec, manual)  # after the server set spec.console_pipe
            groups = _groups(target, info, session.spec)
            session.serial_log.parent.mkdir(parents=True, exist_ok=True)
            prune_logs(session.serial_log.parent, target.name, KEEP_LOGS - 1)  # room for this run
            check()
            with open(session.qemu_log, "wb") as qemu_log:
                proc = _start(flatten(groups), qemu_log, keep_running)
            server.follow(proc)  # QEMU gone: the clients (this terminal first) get an EOF
            say(f"booting {target.name} ({boot_source(spec)}) in the background, pid {proc.pid}")
            say(f"serial console log: {session.serial_log}")
            qmp = _wait_for_qemu(proc, session, check)
            conn = _connect_console(proc, session, check)
            if manual:
                watcher = SerialWatcher(session, activation_command(target))
            check()
            qmp_execute(qmp, "cont")
        if manual:
            say(f"{target.machine} has no fw_cfg: bbv types '{activation_command(target)}' on "
                "the serial line once barebox shows its prompt")
        started = True
        status = run_console(Options(Endpoint(path=str(session.console)),
                                     quiet_hint=15.0), conn)
        if status == 0 and _ended(proc):  # QEMU ended on its own, maybe killed
            status = exit_status(proc.returncode)
    except (Signalled, KeyboardInterrupt) as exc:
        stopped = exc if isinstance(exc, Signalled) else Signalled(signal.SIGINT)
        say(f"stopped by {stopped}")
        status = stopped.exit_status
    finally:
        if watcher is not None:
            watcher.close()
        # --keep-running keeps QEMU when the user leaves; a signal stops it as in every mode
        if proc is not None and keep_running and started and status == 0 and \
                proc.poll() is None:
            _report_running(proc, session, server)
        elif proc is not None:
            _shutdown(proc, qmp)
            session.remove_sockets()
        if qmp is not None:
            from barebox_virtio_cli.qemu.qmp import close

            close(qmp)
    if proc is not None and proc.returncode not in (None, 0, -15):
        say(f"QEMU exited with status {proc.returncode}; its messages: {session.qemu_log}")
    return status


def _ended(proc: subprocess.Popen, grace: float = 0.3) -> bool:
    """Whether QEMU has exited; the console closes a moment before QEMU can be reaped."""
    with suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    return proc.returncode is not None


def _start(argv: list[str], log, keep_running: bool) -> subprocess.Popen:
    """Own session: terminal signals reach bbv only, which stops QEMU itself. Without
    --keep-running QEMU also gets SIGTERM if bbv dies without cleaning up."""
    from barebox_virtio_cli.util.processes import start_child

    return start_child(argv, die_with_bbv=not keep_running, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_qemu(proc: subprocess.Popen, session: Session, check: Callable[[], None]):
    """QMP client once QEMU listens; QEMU stays paused (-S) until told to continue."""
    from barebox_virtio_cli.qemu import qmp

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        check()
        _check_alive(proc, session)
        if session.qmp.exists():
            with suppress(Exception):  # qemu.qmp wraps the OSError; QEMU may not listen yet
                return qmp.connect_unix(session.qmp)
        if time.monotonic() > deadline:
            raise BbvError(f"QEMU did not open {session.qmp} within {START_TIMEOUT:g} s; "
                           f"see {session.qemu_log}")
        time.sleep(0.05)


def _connect_console(proc: subprocess.Popen, session: Session,
                     check: Callable[[], None]) -> Conn:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        check()
        _check_alive(proc, session)
        try:
            return connect(Endpoint(path=str(session.console)))
        except EndpointError as exc:
            if not exc.transient or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _check_alive(proc: subprocess.Popen, session: Session) -> None:
    if proc.poll() is None:
        return
    from barebox_virtio_cli.qemu.process import HINTS

    text = session.qemu_log.read_text(errors="replace").strip()
    last = text.splitlines()[-1] if text else "no message"
    hint = next((f"; {h}" for pattern, h in HINTS if pattern in text), "")
    raise BbvError(f"QEMU exited with status {proc.returncode} before the console was up: "
                   f"{last}{hint}")


def _shutdown(proc: subprocess.Popen, qmp) -> None:
    """QMP quit (a clean exit, QEMU removes its sockets), then SIGTERM, then SIGKILL."""
    from barebox_virtio_cli.qemu.qmp import execute as qmp_execute
    from barebox_virtio_cli.util.processes import stop

    if proc.poll() is None and qmp is not None:
        with suppress(Exception):  # QEMU already gone, or it did not answer in time
            qmp_execute(qmp, "quit")
            proc.wait(5)
    stop(proc)


def _report_running(proc: subprocess.Popen, session: Session, server) -> None:
    say(f"QEMU keeps running (pid {proc.pid}); serial log: {session.serial_log}")
    say(f"bbv's console server (pid {server.proc.pid}) serves {session.console} until QEMU "
        "exits, output since boot included")
    if session.serial_sock is not None:
        say("the serial log ends here: nobody reads the serial line any more")
    say(f"reattach: bbv console {session.console}")
    say(f"stop it:  kill {proc.pid}")


class SerialWatcher:
    """Reads the serial socket into the log and, like a scripted boot does, stops autoboot and
    types the activation command at the prompt (session/scripted.py's Shell), in a thread, so
    the user is on the virtio console meanwhile."""

    def __init__(self, session: Session, command: str):
        self.conn = connect(Endpoint(path=str(session.serial_sock)))
        os.set_blocking(self.conn.fd, True)
        self.log = open(session.serial_log, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self.command = command
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from barebox_virtio_cli.session.report import TIMEOUT
        from barebox_virtio_cli.session.scripted import SessionEnded, activate, drain, fd_shell

        shell = fd_shell(self.conn.fd, self.conn.fd, "serial console", ACTIVATE_TIMEOUT,
                         tee=self.log)
        try:
            activate(shell, self.command, ACTIVATE_TIMEOUT)
        except SessionEnded as exc:
            if exc.status != TIMEOUT:
                return  # QEMU went away, or close() shut the socket
            say(f"barebox showed no prompt on the serial line; the virtio console stays "
                f"inactive until '{self.command}' is run", raw=True)
        except (OSError, ValueError):
            return  # QEMU went away, or close() shut the socket
        drain(shell)

    def close(self) -> None:
        import socket

        with suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(2)
        self.conn.close()
        self.log.close()
