"""bbv run --attach with real QEMU: a zero-filled stand-in image (the CPU runs zeros, which is all
the relay needs) or, with BBV_BAREBOX_IMAGE, a real barebox that must reach its prompt on the
virtio console."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import need
from console_helpers import BBV, PATIENCE, Terminal, cleanup_dir, short_dir, wait_for

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


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


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


def test_keep_running_says_how_to_reattach_and_stop(attach):
    run = attach("--keep-running")
    run.term.type(b"\x1d")
    assert run.term.wait() == 0
    said = run.term.seen.decode()
    assert f"QEMU keeps running (pid {run.pid})" in said
    assert alive(run.pid) and run.socket.is_socket()
    reattach = re.search(r"reattach: (bbv console \S+)", said)[1].split()
    stop_it = re.search(r"stop it: +(kill \d+)", said)[1].split()
    assert reattach == ["bbv", "console", str(run.socket)]
    again = subprocess.run([*BBV, *reattach[1:], "--linger", "0"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=PATIENCE)
    assert again.returncode == 0 and again.stderr == b""
    assert subprocess.run(stop_it).returncode == 0
    wait_for(lambda: not alive(run.pid), "QEMU to stop")
    assert runtime_files() == []  # QEMU removed its sockets on its clean exit


def test_attach_dry_run_shows_the_paused_start(standin):
    result = subprocess.run([*BBV, "run", "--target", "vexpress", "--image", str(standin),
                             "--attach", "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "virtconsole,chardev=con0" in result.stdout and " -S" in result.stdout
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
        result = subprocess.run([*BBV, "console", str(sock)], input=b"\nversion\n",
                                capture_output=True, timeout=PATIENCE)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(PATIENCE)
        cleanup_dir(where)
    assert result.returncode == 0 and result.stderr == b""
    assert re.search(rb"version\r\n\r?\n?barebox 20\d\d\.\d\d\.\d+", result.stdout), result.stdout
