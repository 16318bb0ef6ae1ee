"""The child processes of `bbv test` (pytest, and the QEMU labgrid starts under it), each in a
process group of its own, so that stopping bbv stops the whole group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

from barebox_virtio_cli.util.processes import start_child
from barebox_virtio_cli.util.signals import STOP_SIGNALS, Signalled, handling


class ProcessGroups:
    """The process groups bbv test started; all are stopped on a signal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen | None:
        """The child, or None once stop_all has begun (nothing new starts then)."""
        with self.lock:
            if self.stopping:
                return None
            proc = start_child(argv, start_new_session=True, **kwargs)
            self.procs.add(proc)
            return proc

    def finish(self, proc: subprocess.Popen) -> None:
        """Reap it and kill what is left of its group (a QEMU pytest did not stop)."""
        proc.wait()
        _killpg(proc.pid, signal.SIGKILL)
        with self.lock:
            self.procs.discard(proc)

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """Stopped by SIGINT, SIGTERM or SIGHUP, stop every child (the build's make, pytest and
        its QEMU) and raise Signalled; a second signal while stopping is ignored."""
        caught: list[int] = []

        def on_signal(signum, _frame):
            if not caught:
                caught.append(signum)
                threading.Thread(target=self.stop_all, daemon=True).start()
                raise Signalled(signum)

        try:
            with handling(STOP_SIGNALS, on_signal):
                yield
        except Signalled:
            self.stop_all()
            raise

    def stop_all(self, grace: float = 5.0) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for proc in procs:
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
