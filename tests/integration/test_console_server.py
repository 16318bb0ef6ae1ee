"""bbv's virtio console server (console/server.py) with real QEMU writing its FIFOs and real socat
and bbv console clients. QEMU's human monitor sits on the pipe chardev in place of a guest: it
prints a banner when it starts (to replay), echoes what it is typed and answers it (input
reaching the "guest" from each client), and `help` prints 11 KB (output in bulk)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import bbv, need
from console_helpers import BBV, PATIENCE, cleanup_dir, short_dir, stop, wait_for

from barebox_virtio_cli.console.server import (
    ConsoleServer,
    Ring,
    clean_stale_fifo_dirs,
    fifo_dir_owner,
)

BANNER = b"QEMU "  # "QEMU 7.2.x monitor - type 'help' for more information"
PROMPT = b"(qemu) "  # the banner's end
HELP_END = b"xp /fmt addr -- physical memory dump starting at 'addr'"


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    cleanup_dir(path)


class Served:
    """A ConsoleServer and a QEMU monitor behind its FIFOs."""

    def __init__(self, sockdir: Path, **server):
        self.log = sockdir / "console.log"
        self.logfile = open(self.log, "ab", buffering=0)  # noqa: SIM115
        self.server = ConsoleServer(sockdir / "c", self.logfile, tmpdir=str(sockdir),
                                    **server).start()
        self.path = self.server.path
        self.qemu = subprocess.Popen(
            ["qemu-system-arm", "-M", "none", "-S", "-nodefaults", "-display", "none",
             "-chardev", f"pipe,id=con0,path={self.server.fifo_base}", "-mon", "chardev=con0"],
            stdin=subprocess.DEVNULL)
        wait_for(lambda: BANNER in self.log.read_bytes(), "QEMU's monitor banner")

    def close(self) -> None:
        stop(self.qemu)
        self.server.close()
        self.logfile.close()


@pytest.fixture
def served(sockdir):
    made = []

    def start(**server) -> Served:
        made.append(Served(sockdir, **server))
        return made[-1]

    yield start
    for one in made:
        one.close()


def client(path: Path, replay: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    if not replay:
        from barebox_virtio_cli.console.server import live_name

        sock.bind(live_name())
    sock.connect(str(path))
    sock.settimeout(PATIENCE)
    return sock


def read_until(sock: socket.socket, text: bytes, seen: bytearray | None = None) -> bytes:
    seen = bytearray() if seen is None else seen
    found = text in seen
    while not found:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {text!r}; got {bytes(seen[-300:])!r}"
        start = max(len(seen) - len(text), 0)
        seen += chunk
        found = seen.find(text, start) >= 0  # only the new bytes: this reader must keep up
    return bytes(seen)


pytestmark = [pytest.mark.qemu, need("qemu-system-arm", "socat")]


def test_a_late_client_gets_the_output_since_boot(served):
    con = served()
    # the whole banner is printed when the client comes: a wait, not a sleep (a loaded host)
    wait_for(lambda: con.log.read_bytes().endswith(PROMPT), "QEMU's monitor prompt")
    got = subprocess.run(["socat", "-t", "1", f"UNIX-CONNECT:{con.path}", "-"], input=b"",
                         capture_output=True, timeout=PATIENCE)
    assert got.returncode == 0
    assert got.stdout.startswith(BANNER) and got.stdout == con.log.read_bytes()


def test_no_replay_client_gets_only_what_comes_after(served):
    con = served()
    late = client(con.path, replay=False)
    late.sendall(b"info status\n")
    seen = read_until(late, b"VM status: paused")
    assert BANNER not in seen  # the banner came before it connected
    proc = bbv("console", "--no-replay", "--linger", "0.5", str(con.path), input=b"info name\n",
               text=False, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    assert BANNER not in proc.stdout and b"info name" in proc.stdout


def test_several_clients_each_type_and_all_see_every_answer(served):
    con = served()
    socat = subprocess.Popen(["socat", f"UNIX-CONNECT:{con.path}", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    bbv = subprocess.Popen([*BBV, "console", str(con.path)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    plain = client(con.path)
    try:
        read_until(plain, BANNER)
        socat.stdin.write(b"info status\n")
        socat.stdin.flush()
        seen = bytearray(read_until(plain, b"VM status: paused"))
        bbv.stdin.write(b"info version\n")
        bbv.stdin.flush()
        read_until(plain, b"info version\x1b[K\r\n", seen)
        plain.sendall(b"info name\n")
        read_until(plain, b"info name\x1b[K\r\n", seen)
        plain.sendall(b"quit\n")  # QEMU exits; the clients keep what they got
        stop(con.qemu)
        plain.close()
        outputs = [p.communicate(timeout=PATIENCE)[0] for p in (socat, bbv)]
        socat.stdin.close()
    finally:
        for proc in (socat, bbv):
            proc.kill()
    for out in outputs:  # each saw the replayed banner and the answers to the others' input
        assert out.startswith(BANNER)
        for typed in (b"info status", b"VM status: paused", b"info version", b"info name"):
            assert typed in out


def test_a_stopped_client_blocks_neither_qemu_nor_the_others(served, capfd):
    # a reader that keeps up never falls this far behind; the stopped one passes it (1.1 MB)
    con = served(backlog=512 << 10)
    stopped = subprocess.Popen(["socat", f"UNIX-CONNECT:{con.path}", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    reader = client(con.path)
    try:
        read_until(reader, BANNER)
        wait_for(lambda: len(con.server.clients) == 2, "both clients")
        os.kill(stopped.pid, signal.SIGSTOP)
        reader.sendall(b"help\n" * 100 + b"info status\n")  # about 1.1 MB of output
        seen = read_until(reader, b"VM status: paused")
        assert seen.count(HELP_END) == 100  # the live client got all of it, in time
        wait_for(lambda: len(con.server.clients) == 1, "the stopped client to be cut off")
        said = capfd.readouterr().err
        assert re.search(r"bbv: virtio console client \d fell \d+ KiB behind \(not reading\); "
                         "disconnected", said), said
        reader.sendall(b"info name\n")  # QEMU and the server carry on
        read_until(reader, b"info name\x1b[K\r\n")
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        stopped.kill()
        stopped.wait()
    assert con.log.read_bytes().count(HELP_END) == 100  # the log has everything too


def test_the_ring_keeps_the_newest_bytes():
    ring = Ring(10)
    for chunk in (b"abcd", b"efgh", b"ijkl"):
        ring.append(chunk)
    assert ring.snapshot() == b"cdefghijkl" and ring.total == 12
    ring.append(b"0123456789AB")
    assert ring.snapshot() == b"23456789AB"


def test_close_removes_the_socket_and_the_fifos(sockdir):
    server = ConsoleServer(sockdir / "c", tmpdir=str(sockdir)).start()
    fifo_dir = server.fifo_base.parent
    assert server.path.is_socket() and fifo_dir.is_dir()
    assert (fifo_dir.stat().st_mode & 0o777) == 0o700
    server.close()
    server.close()  # twice is fine (every exit path calls it)
    assert sorted(sockdir.iterdir()) == []


def test_stale_fifo_dirs_of_dead_bbvs_are_removed(sockdir):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = sockdir / f"bbv-vc-{os.getpid()}-abc"
    gone = sockdir / f"bbv-vc-{dead.pid}-abc"
    nameless = sockdir / "bbv-vc-k2j4h5_x"  # no pid in the name: not bbv's to judge
    other = sockdir / "bbv-vcx"
    for path in (mine, gone, nameless, other):
        path.mkdir()
    removed = clean_stale_fifo_dirs(str(sockdir))
    assert removed == [gone]
    assert mine.is_dir() and nameless.is_dir() and other.is_dir()
    assert fifo_dir_owner("bbv-vc-123-x_y") == 123 and fifo_dir_owner("bbv-vc-x_yz") is None


def test_a_paced_server_types_a_byte_at_a_time_each_after_its_echo(sockdir):
    """While QEMU records, a burst typed by a client reaches the guest a byte at a time: the
    next once the guest has echoed the last (and been quiet QUIET), or after ECHO_WAIT. The
    test is the guest, on the server's real FIFOs."""
    from barebox_virtio_cli.console.server import ECHO_WAIT, QUIET

    server = ConsoleServer(sockdir / "c", tmpdir=str(sockdir), paced=True).start()
    guest_in = os.open(f"{server.fifo_base}.in", os.O_RDONLY | os.O_NONBLOCK)
    guest_out = os.open(f"{server.fifo_base}.out", os.O_WRONLY)
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect(str(server.path))
        client.sendall(b"ab\r")

        def typed(within: float) -> bytes:
            got, deadline = b"", time.monotonic() + within
            while time.monotonic() < deadline:
                with contextlib.suppress(BlockingIOError):
                    got += os.read(guest_in, 16)
                time.sleep(0.01)
            return got

        assert typed(0.5) == b"a"  # and no more: no echo yet
        os.write(guest_out, b"a")  # the echo
        assert typed(QUIET + 0.3) == b"b"
        os.write(guest_out, b"x")  # output that is not b's echo lets nothing through
        assert typed(0.4) == b""
        assert typed(ECHO_WAIT) == b"\r"  # after ECHO_WAIT without an echo
    finally:
        client.close()
        server.close()
        os.close(guest_in)
        os.close(guest_out)
