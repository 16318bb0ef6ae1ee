"""bbv run --attach: a Machine (qemu/machine.py) in the background, paused until the console is
connected, bbv's console server between QEMU's FIFOs and the socket, the console relay in the
foreground as its first client; the machine stops QEMU and removes the sockets after. With
--keep-running QEMU outlives bbv, and so does the server (in a process of its own,
console/daemon.py) until QEMU exits.

Targets that cannot activate the virtio console at boot ('manual': no fw_cfg) get their serial
line on a socket that bbv reads into the log while it types the activation command itself."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress

from barebox_virtio_cli.console.relay import (
    Conn,
    EndpointError,
    Options,
    connect,
    run_console,
)
from barebox_virtio_cli.qemu.args import (
    RECORD_TYPING_PACE,
    RunSpec,
    activation_command,
    boot_source,
)
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.qemu.machine import LOG, Machine
from barebox_virtio_cli.session.report import TIMEOUT
from barebox_virtio_cli.session.scripted import SessionEnded, activate, drain, fd_shell
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util.signals import Signalled, announce_stop, deferred, stopped
from barebox_virtio_cli.util.sockets import Endpoint
from barebox_virtio_cli.util.status import say

START_TIMEOUT = 15.0  # seconds for QEMU to open the console
ACTIVATE_TIMEOUT = 60.0  # seconds for barebox to reach a prompt on the serial line


def attach_command(target: Target, info: QemuInfo, spec: RunSpec) -> list[list[str]]:
    """The QEMU command line of an attached run as --attach --dry-run prints it: without the
    -S that holds QEMU until bbv's console is up, since a pasted command has no bbv to let
    it go on."""
    return Machine(target, info, spec, LOG).command()


def attach_run(target: Target, info: QemuInfo, spec: RunSpec, keep_running: bool,
               console_log: str | None = None,
               on_hand_over: Callable[[int], None] | None = None) -> int:
    """The attached run: the exit status is the console's, QEMU's if it ended on its own, or
    128+N after signal N. on_hand_over(pid): QEMU runs on after bbv (--keep-running)."""
    machine = Machine(target, info, spec, LOG, console_log=console_log,
                      keep_running=keep_running, paused=True)  # paused until the console is up
    watcher = None
    started = False
    status = 1
    try:
        # Until QEMU runs, a signal waits for a safe point: QEMU and the server are never
        # left unowned, and it is never raised where it would be swallowed (qemu.qmp's
        # asyncio, a finalizer that the garbage collector runs meanwhile).
        with deferred() as check:
            machine.start()
            say(f"booting {target.name} ({boot_source(spec)}) in the background, "
                f"pid {machine.proc.pid}")
            say(f"serial console log: {machine.serial_log}")
            machine.connect_monitor(check)
            conn = _connect_console(machine, check)
            if machine.manual:
                watcher = SerialWatcher(machine, activation_command(target))
            check()
            machine.execute("cont")
        if machine.manual:
            say(f"{target.machine} has no fw_cfg: bbv types '{activation_command(target)}' on "
                "the serial line once barebox shows its prompt")
        started = True
        status = run_console(Options(Endpoint(path=str(machine.console_socket)),
                                     quiet_hint=15.0), conn)
        if status == 0 and machine.ended():  # QEMU ended on its own, maybe killed
            status = machine.exit_status()
    except (Signalled, KeyboardInterrupt) as exc:
        status = announce_stop(stopped(exc).signum)
    finally:
        if watcher is not None:
            watcher.close()
        # --keep-running keeps QEMU when the user leaves; a signal stops it as in every mode
        if keep_running and started and status == 0 and machine.running:
            machine.hand_over()
            if on_hand_over is not None:
                on_hand_over(machine.proc.pid)
            _report_running(machine)
        machine.close()
    proc = machine.proc
    if proc is not None and proc.returncode not in (None, 0, -15):
        where = f"; its messages: {machine.qemu_log}" if machine.qemu_log.exists() else ""
        say(f"QEMU exited with status {proc.returncode}{where}")
    return status


def _connect_console(machine: Machine, check: Callable[[], None]) -> Conn:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        check()
        machine.check_alive()
        try:
            return connect(Endpoint(path=str(machine.console_socket)))
        except EndpointError as exc:
            if not exc.transient or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _report_running(machine: Machine) -> None:
    pid = machine.proc.pid
    say(f"QEMU keeps running (pid {pid}); serial log: {machine.serial_log}")
    say(f"bbv's console server (pid {machine.server.proc.pid}) serves "
        f"{machine.console_socket} until QEMU exits, output since boot included")
    if machine.serial_sock is not None:
        say("the serial log ends here: nobody reads the serial line any more")
    say(f"reattach: bbv console {machine.console_socket}")
    say(f"stop it:  kill {pid}")


class SerialWatcher:
    """Reads the serial socket into the log and, like a scripted boot does, stops autoboot and
    types the activation command at the prompt (session/scripted.py's Shell), in a thread, so
    the user is on the virtio console meanwhile."""

    def __init__(self, machine: Machine, command: str):
        if machine.serial_on_pty:  # its own copy: read until QEMU exits (EIO), then closed
            self.conn, fd = None, os.dup(machine.pty_fd)
        else:
            self.conn = connect(Endpoint(path=str(machine.serial_sock)))
            os.set_blocking(self.conn.fd, True)
            fd = self.conn.fd
        self.fd = fd
        # recorded: QEMU writes the transcript itself (its chardev's logfile), typing is paced
        self.log = None if machine.records else \
            open(machine.serial_log, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self.pace = RECORD_TYPING_PACE if machine.records else 0.0
        self.command = command
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        shell = fd_shell(self.fd, self.fd, "serial console", ACTIVATE_TIMEOUT,
                         tee=self.log, pace=self.pace)
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

        if self.conn is None:  # the pty: read (never blocking QEMU) until QEMU has exited
            self.thread.join(0.2)
            if not self.thread.is_alive():
                os.close(self.fd)
            return
        with suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(2)
        self.conn.close()
        if self.log is not None:
            self.log.close()
