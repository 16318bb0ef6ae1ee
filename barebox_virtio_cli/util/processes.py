"""Child processes (QEMU, make) that never outlive bbv."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

from barebox_virtio_cli.util.signals import Signalled, deferred

# The process that starts children: bbv itself (nothing in bbv forks and then starts children
# from the fork). Not an os.register_at_fork hook: a signal handler that raises (util/signals)
# inside such a hook is swallowed by Python, and the signal lost.
_FORKING_PID = os.getpid()


def set_parent_death_signal() -> None:
    """The child gets SIGTERM if bbv dies without cleaning up (even by SIGKILL). Runs in the
    child between fork and exec: if bbv died before the prctl, no signal would ever come, so
    stop."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != _FORKING_PID:
        os._exit(1)


def start_child(argv: list[str], die_with_bbv: bool = True, **popen) -> subprocess.Popen:
    """subprocess.Popen(argv, **popen), with the parent-death signal unless die_with_bbv is
    False. A signal meanwhile waits until the child exists, then stops it and is raised:
    Python runs at-fork hooks (logging's, for one) in which what a handler raises is
    swallowed, and the signal would be lost."""
    with deferred() as check:
        proc = subprocess.Popen(argv, preexec_fn=set_parent_death_signal if die_with_bbv
                                else None, **popen)
        try:
            check()
        except Signalled:
            stop(proc)
            raise
    return proc


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


WATCH_STEP = 0.25  # seconds: the watchdog's unit of time


@contextlib.contextmanager
def watchdog(proc: subprocess.Popen, seconds: float) -> Iterator[threading.Event]:
    """Kill proc if the block has not ended after `seconds` of running time; the event it
    yields is set if it did. Time is counted in steps of WATCH_STEP: a stretch in which the
    host ran nothing (a stalled or badly overcommitted VM, seen here freezing everything for
    up to 30 s) ends one step, not the whole allowance, so the child is not killed on waking
    before it could answer."""
    done, fired = threading.Event(), threading.Event()

    def watch() -> None:
        for _ in range(max(1, round(seconds / WATCH_STEP))):
            if done.wait(WATCH_STEP):
                return
        fired.set()
        proc.kill()

    thread = threading.Thread(target=watch, name="bbv-watchdog", daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join()


def output(argv: list[str], seconds: float) -> str:
    """A child's stdout (text, stderr dropped), killed if it runs longer than `seconds`
    (watchdog())."""
    proc = start_child(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    try:
        with watchdog(proc, seconds):
            out, _ = proc.communicate()
    finally:
        stop(proc)  # a signal meanwhile (util/signals) leaves no child either
    return out


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """For a child started in a session of its own: SIGTERM to its whole process group, SIGKILL
    after `grace` seconds; reaped, and whatever it left running in its group killed too."""
    _killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    _killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_exit(pid: int, poll: float = 0.2) -> None:
    """Until process pid, which need not be a child, has exited (a zombie has)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (Linux before 5.3): look now and then
        while _running(pid):
            time.sleep(poll)
        return
    try:
        import select

        select.select([fd], [], [])
    finally:
        os.close(fd)


def _running(pid: int) -> bool:
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return pid_alive(pid)
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class TerminalGuard:
    """The terminal's settings before a child in the foreground (QEMU, gdb) took it, restored
    after whatever the child left it in."""

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

            with contextlib.suppress(OSError, termios.error):  # the terminal may have hung up
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.attrs)
