"""bbv console on pipes against real peers: socat (UNIX-LISTEN, TCP-LISTEN, PTY) and QEMU's own
chardev socket server. Integrity, pipe mode beside socat, --wait, --reconnect, --log, bad input."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import bbv, need
from console_helpers import (
    BBV,
    PATIENCE,
    Terminal,
    cleanup_dir,
    qemu_monitor,
    short_dir,
    socat_listen,
    stop,
    wait_for,
)

pytestmark = need("socat")
MIB = 1 << 20


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    cleanup_dir(path)


def console(*args: str, data: bytes | None = b"", **kw) -> subprocess.CompletedProcess:
    """bbv console on pipes: data on its stdin (or kw's stdin), what it printed."""
    return bbv("console", *args, input=data, text=False, timeout=PATIENCE, **kw)


def test_64_mib_each_way_arrive_intact(sockdir):
    """socat sends 64 MiB while bbv sends 64 MiB from its stdin, at the same time."""
    down, up = os.urandom(64 * MIB), os.urandom(64 * MIB)
    (sockdir / "down").write_bytes(down)
    (sockdir / "up").write_bytes(up)
    sock = sockdir / "s"
    # The shell keeps the connection open until it has everything bbv sends.
    peer = socat_listen(sock, f"SYSTEM:cat {sockdir}/down & cat > {sockdir}/got; wait")
    with open(sockdir / "up", "rb") as stdin, open(sockdir / "out", "wb") as stdout:
        result = subprocess.run([*BBV, "console", "--linger", "0.5", str(sock)], stdin=stdin,
                                stdout=stdout, stderr=subprocess.PIPE, timeout=PATIENCE)
    peer.wait(PATIENCE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    digest = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    assert digest((sockdir / "out").read_bytes()) == digest(down)
    assert digest((sockdir / "got").read_bytes()) == digest(up)


def test_pipe_mode_prints_what_socat_prints(sockdir):
    data = os.urandom(MIB) + b"version\n\x00\x1d\x03\x04 binary-safe\n"
    sock = sockdir / "echo"
    peer = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock},fork,unlink-early", "EXEC:cat"])
    try:
        wait_for(sock.exists, "the echo server")
        theirs = subprocess.run(["socat", f"UNIX-CONNECT:{sock}", "-"], input=data,
                                capture_output=True, timeout=PATIENCE)
        ours = console(str(sock), "--linger", "0.3", data=data)
    finally:
        stop(peer)
    assert theirs.stdout == data  # the echo server works, so the comparison means something
    assert ours.returncode == 0 and ours.stderr == b""
    assert ours.stdout == theirs.stdout


@pytest.mark.qemu
@need("qemu-system-arm")
def test_qemu_chardev_server_answers_through_the_pipe(sockdir):
    """QEMU's socket chardev (server=on,wait=off) with its monitor behind: a command in, the
    answer out, the same bytes socat gets."""
    sock = sockdir / "mon"
    qemu = qemu_monitor(sock)
    try:
        ours = console(f"unix:{sock}", "--linger", "0.5", data=b"info status\n")
        theirs = subprocess.run(["socat", f"UNIX-CONNECT:{sock}", "-"], input=b"info status\n",
                                capture_output=True, timeout=PATIENCE)
    finally:
        stop(qemu)
    assert ours.returncode == 0
    assert b"VM status: paused" in ours.stdout
    assert ours.stdout == theirs.stdout


def test_tcp_endpoint(sockdir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peer = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "EXEC:cat"])
    try:
        result = console("--wait", "30", f"tcp:127.0.0.1:{port}", "--linger", "0.3",
                         data=b"over tcp\n")
    finally:
        stop(peer)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"over tcp\n"


def test_pty_endpoint(sockdir):
    """A pty as QEMU's `-chardev pty` makes it; socat holds the other side."""
    link = sockdir / "pty"
    peer = subprocess.Popen(["socat", f"PTY,link={link},raw,echo=0", "EXEC:cat"])
    try:
        wait_for(link.exists, "socat's pty")
        result = console(str(link), "--linger", "0.3", data=b"\x00raw \x03 bytes\r\n")
    finally:
        stop(peer)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\x00raw \x03 bytes\r\n"


def test_wait_for_a_socket_that_appears_late(sockdir):
    sock = sockdir / "late"
    bbv = subprocess.Popen([*BBV, "console", "--wait", str(sock), "--linger", "0.3"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bbv.stdin.write(b"early bytes\n")  # typed before the socket exists: kept, then sent
    bbv.stdin.flush()
    assert bbv.stderr.readline() == f"bbv: waiting for {sock}\n".encode()
    assert not sock.exists()
    peer = socat_listen(sock, "EXEC:cat")
    try:
        assert bbv.stderr.readline() == f"bbv: connected to {sock}\n".encode()
        bbv.stdin.close()
        out = bbv.stdout.read()
        assert bbv.wait(PATIENCE) == 0
    finally:
        stop(peer)
        stop(bbv)
    assert out == b"early bytes\n"


def test_wait_gives_up_after_its_seconds(sockdir):
    result = console("--wait", "0.3", str(sockdir / "never"))
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"bbv: waiting for {sockdir}/never",
        f"bbv: error: {sockdir}/never: no such socket after waiting 0.3 s"]


@pytest.mark.qemu
@need("qemu-system-arm")
def test_reconnect_across_a_qemu_restart(sockdir):
    """QEMU quits (told to through bbv itself), a new QEMU serves the same path, bbv carries on;
    state lines go to stderr, stdout has only what QEMU sent."""
    sock = sockdir / "mon"
    first = qemu_monitor(sock)
    bbv = subprocess.Popen([*BBV, "console", "--reconnect", str(sock)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        bbv.stdin.write(b"quit\n")
        bbv.stdin.flush()
        assert first.wait(PATIENCE) == 0
        assert bbv.stderr.readline() == \
            f"bbv: {sock} closed; reconnecting when it comes back\n".encode()
        second = qemu_monitor(sock)
        assert bbv.stderr.readline() == f"bbv: connected to {sock}\n".encode()
        bbv.stdin.write(b"info status\n")
        bbv.stdin.flush()
        out = b""
        while b"VM status: paused" not in out:
            chunk = os.read(bbv.stdout.fileno(), 65536)
            assert chunk, f"bbv ended early: {out!r}"
            out += chunk
        bbv.stdin.close()
        assert bbv.wait(PATIENCE) == 0
    finally:
        stop(bbv)
        stop(first)
        if second is not None:
            stop(second)
    assert out.count(b" monitor - type 'help' for more information") == 2  # both banners
    assert b"bbv:" not in out


def test_log_raw_and_timestamped(sockdir):
    sock = sockdir / "s"
    sent = b"line one\r\nline two\n\x00tail"
    (sockdir / "msg").write_bytes(sent)
    log = sockdir / "raw.log"
    log.write_bytes(b"kept\n")  # --log appends
    peer = socat_listen(sock, f"OPEN:{sockdir}/msg")
    result = console(str(sock), "--log", str(log), data=None, stdin=subprocess.DEVNULL)
    peer.wait(PATIENCE)
    assert result.returncode == 0 and result.stdout == sent
    assert log.read_bytes() == b"kept\n" + sent

    peer = socat_listen(sock, f"OPEN:{sockdir}/msg")
    stamped = sockdir / "stamped.log"
    result = console(str(sock), "--log", str(stamped), "--timestamps", data=None,
                     stdin=subprocess.DEVNULL)
    peer.wait(PATIENCE)
    assert result.returncode == 0 and result.stdout == sent
    lines = stamped.read_bytes().split(b"\n")
    stamp = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
    assert [re.sub(stamp, b"", line, count=1) for line in lines] == \
        [b"line one", b"line two", b"\x00tail"]
    assert all(re.match(stamp, line) for line in lines)


def test_a_slow_reader_does_not_fill_memory(sockdir):
    """socat pushes zeros; nobody reads bbv's stdout at first. bbv must stop reading the socket
    (back-pressure) instead of buffering: socat gets stuck after a bounded amount, and bbv's peak
    RSS stays small after 256 MiB have gone through."""
    sock = sockdir / "s"
    peer = socat_listen(sock, "OPEN:/dev/zero")
    bbv = subprocess.Popen([*BBV, "console", str(sock)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    try:
        stuck_at = _settled(lambda: _io(peer.pid, "wchar"))
        assert stuck_at < 16 * MIB, f"bbv took {stuck_at} bytes while stdout was blocked"
        got = 0
        while got < 256 * MIB:
            got += len(os.read(bbv.stdout.fileno(), MIB))
        peak_kib = _status(bbv.pid, "VmHWM")
    finally:
        stop(bbv)
        stop(peer)
    assert peak_kib < 64 * 1024, f"peak RSS {peak_kib} KiB after 256 MiB"


def _settled(read) -> int:
    """A counter's value once it has stopped moving (the hang guard is PATIENCE)."""
    last = -1
    for _ in range(int(PATIENCE / 0.2)):
        value = read()
        if value == last:
            return value
        last = value
        time.sleep(0.2)
    raise AssertionError("the counter never settled")


def _io(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


# -- bad input: one line, non-zero exit, and a terminal left exactly as it was ---------------

def _bad(args: list[str], **kw) -> tuple[int, str, bool]:
    term = Terminal(["console", *args], stderr=subprocess.PIPE, **kw)
    try:
        status = term.proc.wait(PATIENCE)
        err = term.proc.stderr.read().decode()
        return status, err, term.attrs() == term.before
    finally:
        term.proc.stderr.close()
        term.close()


def test_bad_missing(sockdir):
    status, err, untouched = _bad([str(sockdir / "nope")])
    assert (status, untouched) == (1, True)
    assert err == f"bbv: error: {sockdir}/nope: no such socket; is QEMU running with this " \
        "console? (--wait waits for it)\n"


def test_bad_not_a_socket(sockdir):
    (sockdir / "file").write_text("x")
    status, err, untouched = _bad([str(sockdir / "file")])
    assert (status, untouched) == (2, True)
    assert err == f"bbv: error: {sockdir}/file: not a unix socket or a terminal (pty)\n"
    status, err, untouched = _bad([f"unix:{sockdir}/file"])
    assert (status, untouched) == (2, True)
    assert err == f"bbv: error: {sockdir}/file: not a unix socket\n"


def test_bad_stale_socket(sockdir):
    path = sockdir / "stale"
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(str(path))  # bound, then closed without unlinking: what a killed QEMU leaves
    status, err, untouched = _bad([str(path)])
    assert (status, untouched) == (1, True)
    assert err == f"bbv: error: {path}: connection refused: no QEMU is serving this socket " \
        "(a stale socket file)\n"


def test_bad_permission_denied(sockdir):
    path = sockdir / "private"
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(str(path))
        srv.listen(1)
        path.chmod(0)
        status, err, untouched = _bad([str(path)], preexec_fn=_obey_file_modes)
    if status == 99:
        pytest.skip("root here cannot drop CAP_DAC_OVERRIDE (no CAP_SETPCAP)")
    assert (status, untouched) == (1, True)
    assert err == f"bbv: error: {path}: permission denied\n"


def _obey_file_modes() -> None:
    """Root ignores file modes through CAP_DAC_OVERRIDE: drop it (and CAP_DAC_READ_SEARCH) from
    the bounding set, so that the exec'd bbv runs as root without them."""
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                os._exit(99)


def test_bad_path_too_long(sockdir):
    long = sockdir / ("d" * 60) / ("s" * 60)
    status, err, untouched = _bad([str(long)])
    assert (status, untouched) == (2, True)
    size = len(str(long).encode())
    assert err == f"bbv: error: {long}: the socket path is {size} bytes, more than the 107 a " \
        "unix socket allows; choose a shorter path (a symlink to its directory works)\n"


def test_bad_tcp_port_closed():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, err, untouched = _bad([f"tcp:127.0.0.1:{port}"])
    assert (status, untouched) == (1, True)
    assert err == f"bbv: error: tcp:127.0.0.1:{port}: connection refused: nothing listens " \
        f"on port {port}\n"


@pytest.mark.parametrize("args, message", [
    (["tcp:host"], "ENDPOINT 'tcp:host' is not tcp:HOST:PORT or tcp::PORT (port 1-65535)"),
    (["--escape", "^", "/x"], "--escape '^' is not a key"),
    (["--timestamps", "/x"], "--timestamps needs --log FILE"),
    ([], "missing ENDPOINT"),
])
def test_bad_options(args, message):
    status, err, untouched = _bad(args)
    assert (status, untouched) == (2, True)
    assert err.startswith(f"bbv: error: {message}") and err.count("\n") == 1
