"""The console server (console/server.py) in a process of its own, for `bbv run --attach
--keep-running`: QEMU outlives bbv there, and so must the server, or the console would be
QEMU's own lossy socket again.

bbv (qemu/machine.py) starts it, reads one line (the FIFO base QEMU gets, or an error),
starts QEMU and writes QEMU's pid to it. The server then lives until QEMU exits, with its own
session (no terminal signals) and its notes in a file, and removes its socket and FIFOs when
QEMU exits or it is stopped by a signal; once QEMU has exited, the sockets QEMU served too
(QEMU leaves them when it exits without cleaning up: killed, or riscv64's test device, which
barebox's poweroff uses, calls exit() in QEMU 7.2). If bbv closes the pipe without a pid (QEMU never
started), it stops at once."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from barebox_virtio_cli.console.server import ConsoleServer, open_console_log
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.processes import wait_for_exit
from barebox_virtio_cli.util.signals import STOP_SIGNALS, Signalled, raising

READY, USAGE, ERROR = "ready ", "usage ", "error "
PACED = "paced"  # QEMU records: the server paces typed input (console/server.py)
STOP_WAIT = 5.0  # seconds for the server to remove its files once QEMU is gone


class DetachedServer:
    """bbv's side: the server process, and what it said when it started."""

    def __init__(self, path: Path, log_path: str | None, notes: Path, paced: bool = False,
                 qemu_sockets: tuple[Path, ...] = ()):
        self.path = path  # the socket it serves
        notes.parent.mkdir(parents=True, exist_ok=True)
        with open(notes, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(path), log_path or "", str(notes),
                 PACED if paced else "", *map(str, qemu_sockets)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                start_new_session=True)
        try:
            line = self.proc.stdout.readline().rstrip("\n")
        except BaseException:
            self._stop()
            raise
        finally:
            self.proc.stdout.close()
        if not line.startswith(READY):
            self._stop()
            if line.startswith(USAGE):
                raise UsageError(line.removeprefix(USAGE))
            raise BbvError(line.removeprefix(ERROR) or
                           f"the console server did not start; see {notes}")
        self.fifo_base = Path(line.removeprefix(READY))
        self.qemu: subprocess.Popen | None = None

    def follow(self, qemu: subprocess.Popen) -> None:
        """From now on the server lives as long as QEMU does."""
        self.qemu = qemu
        self.proc.stdin.write(f"{qemu.pid}\n")
        self.proc.stdin.close()

    def close(self) -> None:
        """bbv leaves: the server of a QEMU that runs on stays; otherwise it is waited for, so
        that its socket and FIFOs are gone when bbv exits."""
        if self.qemu is not None and self.qemu.poll() is None:
            return
        self._stop()

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # no pid: the server leaves at once
        try:
            self.proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()


# -- the server process ----------------------------------------------------------------------
def serve(path: Path, log_path: str, notes: Path, paced: bool = False,
          qemu_sockets: tuple[Path, ...] = ()) -> int:
    try:
        return _serve(path, log_path, paced, qemu_sockets)
    finally:
        with contextlib.suppress(OSError):
            if notes.stat().st_size == 0:
                notes.unlink()


def _serve(path: Path, log_path: str, paced: bool, qemu_sockets: tuple[Path, ...]) -> int:
    with raising(STOP_SIGNALS):
        try:
            log = open_console_log(log_path)
            server = ConsoleServer(path, log, paced=paced).start()
        except UsageError as exc:
            print(f"{USAGE}{exc}", flush=True)
            return 2
        except BbvError as exc:
            print(f"{ERROR}{exc}", flush=True)
            return 1
        try:
            print(f"{READY}{server.fifo_base}", flush=True)
            pid = sys.stdin.readline().strip()
            if pid.isdigit():
                wait_for_exit(int(pid))
                for socket in qemu_sockets:
                    sockets.remove(socket)
            return 0
        except Signalled as exc:
            return exc.exit_status
        finally:
            server.close()
            if log is not None:
                log.close()


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]),
                   sys.argv[4:5] == [PACED], tuple(map(Path, sys.argv[5:]))))
