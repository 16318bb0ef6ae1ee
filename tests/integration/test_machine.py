"""qemu/machine.Machine, the one owner of a QEMU run, in process against real QEMU with the tiny
guest (tests/tinyguest): each step of the stop path (QMP quit, SIGTERM, SIGKILL), a signal at
the start, QEMU's own exit as bbv's status, and nothing left behind (QEMU, sockets, FIFOs)."""

from __future__ import annotations

import os
import re
import select
import signal
import tempfile
import time
from pathlib import Path

import pytest
from conftest import need
from process_helpers import CROSS, TINYGUEST, alive, assemble, qemu_pids

from barebox_virtio_cli.qemu import machine as qm
from barebox_virtio_cli.util.signals import Signalled

pytestmark = [pytest.mark.qemu, need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld",
                                     f"{CROSS}objcopy")]


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Path:
    return assemble(TINYGUEST / "tinyguest.s", tmp_path_factory.mktemp("machine"), "guest")


@pytest.fixture
def fifo_tmp(tmp_path, monkeypatch) -> Path:
    """bbv's FIFO dirs in a private TMPDIR, apart from other processes'."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    return tmp


def machine(guest: Path, wiring: str, console: bool = True, **options) -> qm.Machine:
    from barebox_virtio_cli.run.request import RunRequest
    from barebox_virtio_cli.run.service import prepare

    runtime = Path(os.environ["BBV_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700, exist_ok=True)
    target, info, spec = prepare(RunRequest(
        target="vexpress", image=str(guest),
        console=str(runtime / "con") if console else None))
    return qm.Machine(target, info, spec, wiring, **options)


def read_pty(fd: int, until: bytes, seconds: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while until not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        try:
            seen += os.read(fd, 4096)
        except OSError:  # EIO: QEMU has gone
            break
    return seen


def leftovers(guest: Path, tmp: Path) -> list:
    runtime = Path(os.environ["BBV_RUNTIME_DIR"])
    return qemu_pids(guest) + list(tmp.iterdir()) + \
        (list(runtime.iterdir()) if runtime.exists() else [])


def test_qmp_quit_ends_qemu_cleanly_with_nothing_left(guest, fifo_tmp):
    """LOG (an attached run): QEMU paused, bbv's QMP client; stop() asks QEMU to quit, which it
    does without a signal (no 'terminating on signal' in its log, so the empty log goes too)."""
    m = machine(guest, qm.LOG, paused=True)
    with m:
        m.connect_monitor()
        assert m.execute("query-status")["return"]["status"] == "prelaunch"
        socket = m.console_socket
        assert socket.is_socket() and m.qmp_path.is_socket()
        argv = Path(f"/proc/{m.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert f"pipe,id=con0,path={m.server.fifo_base}".encode() in argv  # the spec's one way
        m.stop()
        assert m.proc.returncode == 0 and m.exit_status() == 0
        assert not m.qemu_log.exists() or b"terminating" not in m.qemu_log.read_bytes()
    assert not m.qemu_log.exists()  # empty: removed
    assert not socket.exists() and m.spec.console_pipe is None
    assert leftovers(guest, fifo_tmp) == []


def test_without_a_monitor_sigterm_stops_qemu(guest, fifo_tmp):
    """PTY (a scripted run): no QMP, so SIGTERM, which QEMU reports on its stderr (the pty)."""
    with machine(guest, qm.PTY) as m:
        assert b"autoboot" in read_pty(m.pty_fd, b"autoboot")  # the guest runs
        m.stop()
        said = read_pty(m.pty_fd, b"terminating on signal 15")
        assert b"terminating on signal 15" in said
        assert m.proc.returncode == 0
    assert leftovers(guest, fifo_tmp) == []


def test_sigkill_when_qemu_does_not_end_on_sigterm(guest, fifo_tmp):
    """A stopped QEMU cannot act on SIGTERM: after the grace period it gets SIGKILL; bbv's
    status for that is 128+9, and the sockets QEMU could not remove are removed."""
    m = machine(guest, qm.LOG)
    with m:
        m.connect_monitor()
        qmp_path = m.qmp_path
        os.kill(m.proc.pid, signal.SIGSTOP)  # neither QMP nor SIGTERM can reach it now
        started = time.monotonic()
        m.stop()
        assert time.monotonic() - started >= qm.QUIT_WAIT  # QMP quit went unanswered
        assert m.proc.returncode == -signal.SIGKILL and m.exit_status() == 128 + 9
        assert qmp_path.is_socket()  # QEMU died holding it
    assert not qmp_path.exists()
    assert leftovers(guest, fifo_tmp) == []


def test_qemu_killed_from_outside_is_its_status_and_close_cleans_up(guest, fifo_tmp):
    m = machine(guest, qm.LOG)
    with m:
        m.connect_monitor()
        os.kill(m.proc.pid, signal.SIGKILL)
        assert m.ended(5) and m.exit_status() == 137
    assert not m.qmp_path.exists()
    assert leftovers(guest, fifo_tmp) == []


@pytest.mark.parametrize("where", ["serving", "forking"])
def test_a_signal_at_the_start_stops_everything_then_is_raised(guest, fifo_tmp, monkeypatch,
                                                               where):
    """A SIGTERM while the console server starts, or while QEMU is forked, waits until what was
    started is held, then the machine is closed and Signalled raised: no QEMU, no socket, no
    FIFO."""
    from barebox_virtio_cli.console.server import ConsoleServer
    from barebox_virtio_cli.util import processes

    def signalled(function):
        def wrapper(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return function(*args, **kwargs)
        return wrapper

    m = machine(guest, qm.PTY)  # probed before: the probe starts QEMU too
    if where == "serving":
        monkeypatch.setattr(ConsoleServer, "start", signalled(ConsoleServer.start))
    else:
        monkeypatch.setattr(processes, "start_child", signalled(processes.start_child))
    with pytest.raises(Signalled) as raised:
        m.start()
    assert raised.value.signum == signal.SIGTERM and raised.value.exit_status == 143
    assert m.proc is None if where == "serving" else not alive(m.proc.pid)
    assert leftovers(guest, fifo_tmp) == []


def test_qemu_failing_to_start_is_a_clear_error(guest, fifo_tmp):
    m = machine(guest, qm.LOG, paused=True)
    m.spec.qemu_args = ["-no-such-option"]
    from barebox_virtio_cli.errors import BbvError

    with pytest.raises(BbvError, match=r"QEMU exited with status 1 before the console was up: "
                                       r".*no-such-option"), m:
        m.connect_monitor()
    assert m.qemu_log.exists()  # what QEMU said is kept for the user
    assert leftovers(guest, fifo_tmp) == []


def test_hand_over_leaves_qemu_and_its_detached_server(guest, fifo_tmp):
    """--keep-running: after hand_over() close() leaves QEMU and the console server running."""
    m = machine(guest, qm.LOG, keep_running=True)
    with m:
        m.connect_monitor()
        m.hand_over()
    try:
        assert alive(m.proc.pid) and alive(m.server.proc.pid) and m.console_socket.is_socket()
        argv = Path(f"/proc/{m.proc.pid}/cmdline").read_text()
        assert re.search(rf"pipe,id=con0,path=\S*bbv-vc-{m.server.proc.pid}-", argv)
    finally:
        os.kill(m.proc.pid, signal.SIGTERM)
        m.proc.wait(10)
        m.server.proc.wait(10)  # it follows QEMU out and cleans up
    assert leftovers(guest, fifo_tmp) == []


def test_capture_runs_qemu_to_its_exit(guest, fifo_tmp, tmp_path):
    """CAPTURE (--dump-dtb): QEMU writes its tree and exits; nothing left."""
    from barebox_virtio_cli.qemu.dtb import dump_dtb

    m = machine(guest, qm.CAPTURE, console=False)
    m.spec.dump_dtb = tmp_path / "virt.dtb"
    assert dump_dtb(m, m.spec.dump_dtb) == 0
    assert m.spec.dump_dtb.read_bytes()[:4] == b"\xd0\x0d\xfe\xed"
    assert m.proc.returncode == 0
    assert leftovers(guest, fifo_tmp) == []
