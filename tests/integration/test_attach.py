"""bbv run --attach with real QEMU: a zero-filled stand-in image (the CPU runs zeros, which is all
the relay needs) or, with BBV_BAREBOX_IMAGE, a real barebox that must reach its prompt on the
virtio console."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import bbv, need
from console_helpers import BBV, PATIENCE, Terminal, cleanup_dir, short_dir, wait_for
from process_helpers import alive, catches, children, qemu_pids

pytestmark = [pytest.mark.qemu, need("qemu-system-arm")]
BAREBOX = os.environ.get("BBV_BAREBOX_IMAGE")
PROMPT_END = b"\x1b[0m "  # barebox's coloured prompt ends here


@pytest.fixture
def standin(tmp_path) -> Path:
    image = tmp_path / "zeros.img"
    image.write_bytes(bytes(64 * 1024))
    return image


def runtime_files() -> list[Path]:
    run = Path(os.environ["BBV_RUNTIME_DIR"])
    return sorted(run.iterdir()) if run.exists() else []


class Attached:
    """bbv run --attach on a pty, with what it said on the way up."""

    def __init__(self, image: Path, *extra: str):
        self.term = Terminal(["run", "--target", "vexpress", "--image", str(image), "--attach",
                              *extra])
        head = self.term.read_until(b"twice sends it\r\n").decode()
        self.pid = int(re.search(r"in the background, pid (\d+)", head)[1])
        self.serial_log = Path(re.search(r"serial console log: (\S+)", head)[1])
        self.socket = Path(re.search(r"connected to (\S+);", head)[1])
        self.head = head

    def close(self) -> None:
        self.term.close()
        if alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def attach(standin):
    sessions = []

    def start(*extra: str, image: Path = standin) -> Attached:
        sessions.append(Attached(image, *extra))
        return sessions[-1]

    yield start
    for session in sessions:
        session.close()


@pytest.mark.parametrize("way, status", [("escape", 0), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_leaving_stops_qemu_and_removes_the_sockets(attach, way, status):
    run = attach()
    assert alive(run.pid) and run.socket.is_socket()
    assert run.serial_log.exists()  # QEMU writes the serial line there
    assert run.term.raw_now()
    if way == "escape":
        run.term.type(b"\x1d")
    else:
        run.term.proc.send_signal(getattr(signal, way))
    assert run.term.wait() == status
    assert not alive(run.pid)
    assert runtime_files() == []
    assert run.term.attrs() == run.term.before
    assert b"Traceback" not in run.term.seen


def test_qemu_dying_ends_the_session(attach):
    run = attach()
    os.kill(run.pid, signal.SIGKILL)  # no clean exit: QEMU leaves its socket files behind
    assert run.term.wait() == 128 + signal.SIGKILL  # QEMU's death is bbv's status
    assert b"closed by the other side" in run.term.seen
    assert b"QEMU exited with status -9" in run.term.seen
    assert runtime_files() == []  # bbv removed them
    assert run.term.attrs() == run.term.before


def console_server_pid(said: str) -> int:
    return int(re.search(r"bbv's console server \(pid (\d+)\) serves", said)[1])


def fifo_dirs(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"bbv-vc-{pid}-*"))


def test_keep_running_leaves_bbvs_console_server_with_qemu(attach, tmp_path):
    log = tmp_path / "console.log"
    run = attach("--keep-running", "--console-log", str(log))
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    said = run.term.seen.decode()
    assert f"QEMU keeps running (pid {run.pid})" in said
    server = console_server_pid(said)
    assert alive(run.pid) and alive(server) and run.socket.is_socket()
    qemu_argv = Path(f"/proc/{run.pid}/cmdline").read_bytes().split(b"\0")
    assert any(a.startswith(b"pipe,id=con0,path=") for a in qemu_argv)  # bbv's FIFOs, no socket
    assert fifo_dirs(server) and log.exists()
    reattach = re.search(r"reattach: (bbv console \S+)", said)[1].split()
    stop_it = re.search(r"stop it: +(kill \d+)", said)[1].split()
    assert reattach == ["bbv", "console", str(run.socket)]
    again = bbv(*reattach[1:], "--linger", "0", text=False, timeout=PATIENCE)
    assert again.returncode == 0 and again.stderr == b""
    assert subprocess.run(stop_it).returncode == 0
    wait_for(lambda: not alive(run.pid) and not alive(server), "QEMU and the server to stop")
    assert runtime_files() == [] and fifo_dirs(server) == []  # the server cleaned up
    assert not list(Path(os.environ["BBV_STATE_DIR"]).rglob("*.console-server.log"))  # empty


def test_keep_running_qemu_gone_without_cleanup_leaves_no_socket(attach):
    """A handed-over QEMU that exits without removing its sockets (killed here; riscv64's
    barebox poweroff in QEMU 7.2 exits the same way): the console server removes them."""
    run = attach("--keep-running")
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    server = console_server_pid(run.term.seen.decode())
    assert any(p.suffix == ".qmp" for p in runtime_files())
    os.kill(run.pid, signal.SIGKILL)
    wait_for(lambda: not alive(run.pid) and not alive(server), "QEMU and the server to stop")
    assert runtime_files() == [] and fifo_dirs(server) == []


def fifo_owner(qemu: int) -> int:
    """The pid of the console server whose FIFOs QEMU was given (bbv-vc-PID-xxxx)."""
    argv = Path(f"/proc/{qemu}/cmdline").read_text()
    return int(re.search(r"pipe,id=con0,path=\S*?/bbv-vc-(\d+)-", argv)[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_keep_running_stopped_by_a_signal_leaves_nothing_behind(attach, sig):
    """--keep-running keeps QEMU when the user leaves, not when bbv is stopped."""
    run = attach("--keep-running")
    server = fifo_owner(run.pid)
    assert alive(server) and server != run.term.proc.pid  # a process of its own
    run.term.proc.send_signal(sig)
    assert run.term.wait() == 128 + sig
    assert not alive(run.pid) and not alive(server)
    assert runtime_files() == [] and not run.socket.exists() and fifo_dirs(server) == []
    assert "QEMU keeps running" not in run.term.seen.decode()


def test_deferred_signals_wait_for_the_check():
    from barebox_virtio_cli.util.signals import Signalled, deferred

    reached = []
    with pytest.raises(Signalled) as raised, deferred() as check:
        os.kill(os.getpid(), signal.SIGHUP)
        reached.append("after the signal")  # not cut here
        check()
        reached.append("after the check")
    assert reached == ["after the signal"] and raised.value.signum == signal.SIGHUP
    with pytest.raises(Signalled), deferred():
        os.kill(os.getpid(), signal.SIGTERM)  # no check in the block: its end raises


@pytest.mark.parametrize("delay", ["qemu", "qemu", 0, 0.05, 0.1, 0.2])
def test_a_signal_during_the_start_leaves_nothing_behind(standin, delay):
    """Whatever point of the start (QEMU starting, QMP, the console) a signal lands on, even
    with --keep-running: 143, no QEMU, no console server, no socket, no FIFOs."""
    where = short_dir()
    sock, tmp = where / "con", where / "tmp"  # bbv's FIFO dirs apart from other processes'
    tmp.mkdir()
    term = Terminal(["run", "--target", "vexpress", "--image", str(standin), "--attach",
                     "--keep-running", "--console", str(sock)],
                    env={**os.environ, "TMPDIR": str(tmp)})
    try:
        wait_for(lambda: catches(term.proc.pid, signal.SIGTERM), "bbv to handle SIGTERM")
        if delay == "qemu":  # the moment QEMU is forked, before bbv holds it
            while not children(term.proc.pid) and term.proc.poll() is None:
                time.sleep(0.0005)
        else:
            time.sleep(delay)
        term.proc.send_signal(signal.SIGTERM)
        assert term.wait() == 143
        assert b"Traceback" not in term.seen and b"Exception" not in term.seen
        wait_for(lambda: not qemu_pids(standin), "QEMU to stop")
        time.sleep(0.5)  # a QEMU forked but not yet exec'd when bbv left would show up now
        assert not qemu_pids(standin) and not sock.exists() and runtime_files() == []
        assert list(tmp.iterdir()) == []
    finally:
        term.close()
        for pid in qemu_pids(standin):  # a failed test leaves no QEMU either
            os.kill(pid, signal.SIGKILL)
        cleanup_dir(where)


def test_keep_running_server_stops_with_its_signal_and_cleans_up(attach):
    run = attach("--keep-running")
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    server = console_server_pid(run.term.seen.decode())
    os.kill(server, signal.SIGTERM)
    wait_for(lambda: not alive(server), "the console server to stop")
    assert not run.socket.exists() and fifo_dirs(server) == []
    assert alive(run.pid)  # QEMU goes on without a console reader; the test stops it


def test_attach_dry_run_prints_a_command_that_runs_when_pasted(standin):
    result = bbv("run", "--target", "vexpress", "--image", str(standin), "--attach", "--dry-run")
    assert result.returncode == 0
    assert "virtconsole,chardev=con0" in result.stdout and "-qmp unix:" in result.stdout
    assert " -S" not in result.stdout  # bbv's own hold until its console is up
    assert runtime_files() == []


@pytest.mark.skipif(not BAREBOX, reason="BBV_BAREBOX_IMAGE (a vexpress barebox-dt-2nd.img) unset")
def test_attach_reaches_the_barebox_prompt_on_the_virtio_console(attach):
    """Nothing typed but one key to stop autoboot: the virtio console was activated at boot."""
    run = attach(image=Path(BAREBOX))
    run.term.read_until(b"stop autoboot")
    run.term.type(b" ")
    assert b"barebox@" in run.term.read_until(PROMPT_END)
    run.term.type(b"version\r")
    answer = run.term.read_until(PROMPT_END)
    assert re.search(rb"version\r\n\r?\n?barebox 20\d\d\.\d\d\.\d+", answer), answer
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    assert not alive(run.pid) and runtime_files() == []
    assert run.term.attrs() == run.term.before


@pytest.mark.skipif(not BAREBOX, reason="BBV_BAREBOX_IMAGE (a vexpress barebox-dt-2nd.img) unset")
def test_pipe_into_the_virtio_console_of_a_running_barebox():
    """`printf 'version\\n' | bbv console SOCK` while `bbv run --console SOCK` runs."""
    where = short_dir()
    sock = where / "con"
    run = subprocess.Popen([*BBV, "run", "--target", "vexpress", "--image", BAREBOX,
                            "--console", str(sock)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        serial = b""
        while b"stop autoboot" not in serial:
            chunk = os.read(run.stdout.fileno(), 4096)
            assert chunk, serial
            serial += chunk
        result = bbv("console", str(sock), input=b"\nversion\n", text=False, timeout=PATIENCE)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(PATIENCE)
        cleanup_dir(where)
    assert result.returncode == 0 and result.stderr == b""
    assert re.search(rb"version\r\n\r?\n?barebox 20\d\d\.\d\d\.\d+", result.stdout), result.stdout


@pytest.mark.skipif(not BAREBOX, reason="BBV_BAREBOX_IMAGE (a vexpress barebox-dt-2nd.img) unset")
def test_keep_running_reattach_replays_the_boot_and_answers(attach):
    """After bbv has left, a new client still gets barebox's output since boot, and its
    commands reach barebox."""
    run = attach("--keep-running", image=Path(BAREBOX))
    run.term.read_until(b"stop autoboot")
    run.term.type(b" ")
    run.term.read_until(PROMPT_END)
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    result = bbv("console", str(run.socket), input=b"version\n", text=False, timeout=PATIENCE)
    os.kill(run.pid, signal.SIGTERM)
    assert result.returncode == 0 and result.stderr == b""
    assert b"stop autoboot" in result.stdout  # the replay, from before this client came
    assert re.search(rb"version\r\n\r?\n?barebox 20\d\d\.\d\d\.\d+", result.stdout), \
        result.stdout
    wait_for(lambda: not alive(run.pid), "QEMU to stop")


def test_logs_of_old_runs_are_rotated(attach):
    """Each attached run leaves a serial and a QEMU log in the state dir: only the newest
    KEEP_LOGS runs' stay (and those of a bbv still running), so they do not pile up."""
    from barebox_virtio_cli.qemu.machine import KEEP_LOGS

    logs = Path(os.environ["BBV_STATE_DIR"]) / "logs"
    logs.mkdir(parents=True)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    old = []
    for i in range(KEEP_LOGS + 5):
        for kind in ("serial", "qemu"):
            path = logs / f"vexpress-20250101-0000{i:02d}-{dead}.{kind}.log"
            path.write_text("old\n")
            os.utime(path, (1_000_000 + i, 1_000_000 + i))
            old.append(path)
    running = logs / f"vexpress-20240101-000000-{os.getpid()}.serial.log"
    running.write_text("a bbv still running\n")
    os.utime(running, (1000, 1000))
    other = logs / f"malta-20240101-000000-{dead}.serial.log"
    other.write_text("another target\n")
    run = attach()
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    runs = {p.name.rsplit(".", 2)[0] for p in logs.glob("vexpress-*.log")}
    assert len(runs) == KEEP_LOGS + 1  # the newest old ones, this run, and the running bbv's
    assert run.serial_log.exists() and running.exists() and other.exists()
    assert not old[0].exists() and old[-1].exists()
