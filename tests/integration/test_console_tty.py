"""bbv console on a real pseudo-terminal, socat (UNIX-LISTEN) on the other side: raw mode while
attached, every byte through (Ctrl-C too), the escape key, and the terminal's attributes after
each way out equal to the ones before."""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import need
from console_helpers import Terminal, cleanup_dir, short_dir, socat_listen, stop

pytestmark = need("socat")


@pytest.fixture
def attached():
    """(terminal running bbv console, socat peer whose stdin/stdout the test holds)."""
    where = short_dir()
    sock = where / "s"
    peer = socat_listen(sock, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    term = Terminal(["console", "--escape", "^a", str(sock)])
    hint = term.read_until(b"\n")
    yield term, peer, sock, hint
    term.close()
    stop(peer)
    cleanup_dir(where)


def peer_reads(peer: subprocess.Popen, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = peer.stdout.read1(size - len(data))
        assert chunk, f"socat ended after {data!r}"
        data += chunk
    return data


def test_raw_mode_and_every_byte_through(attached):
    term, peer, sock, hint = attached
    assert hint == f"bbv: connected to {sock}; Ctrl-A leaves, twice sends it\r\n".encode()
    assert term.raw_now()
    assert term.attrs() != term.before
    # Ctrl-C, Ctrl-D, Ctrl-Z, Ctrl-] are data; the escape key twice is one escape byte
    term.type(b"a\x03\x04\x1a\x1d\x01\x01b\r")
    assert peer_reads(peer, 8) == b"a\x03\x04\x1a\x1d\x01b\r"
    peer.stdin.write(b"from barebox\r\n\x00")
    peer.stdin.flush()
    assert term.read_until(b"\x00") == b"from barebox\r\n\x00"  # raw: no output processing
    assert term.proc.poll() is None


@pytest.mark.parametrize("way, status, said", [
    ("escape", 0, b"bbv: left "),
    ("escape-key", 0, b"bbv: left "),
    ("eof", 0, b"/s closed by the other side\r\n"),
    ("SIGTERM", 128 + signal.SIGTERM, b"bbv: stopped by SIGTERM"),
    ("SIGHUP", 128 + signal.SIGHUP, b"bbv: stopped by SIGHUP"),
])
def test_terminal_restored_on_every_way_out(attached, way, status, said):
    term, peer, sock, _ = attached
    assert term.raw_now()
    if way == "escape":
        term.type(b"x\x01")  # alone: leaves once no second escape follows
    elif way == "escape-key":
        term.type(b"x\x01q")  # another key right after: leaves at once, q is not sent
    elif way == "eof":
        peer.stdin.close()  # socat shuts its side down: QEMU going away looks like this
    else:
        term.proc.send_signal(getattr(signal, way))
    assert term.wait() == status
    assert term.attrs() == term.before
    assert said in term.seen
    if way.startswith("escape"):
        assert peer_reads(peer, 1) == b"x"
        peer.stdin.close()
        assert peer.stdout.read() == b""  # nothing after x: neither the escape nor q


def test_terminal_restored_after_an_error():
    """Output that cannot be written (stdout is /dev/full): one error line, terminal as before."""
    where = short_dir()
    sock = where / "s"
    peer = socat_listen(sock, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with open("/dev/full", "wb") as full:
        term = Terminal(["console", str(sock)], stdout=full, stderr=subprocess.PIPE)
    try:
        assert term.proc.stderr.readline().startswith(b"bbv: connected to")
        assert term.raw_now()
        peer.stdin.write(b"barebox says something\n")
        peer.stdin.flush()
        assert term.wait() == 1
        assert term.proc.stderr.read() == \
            b"bbv: error: cannot write the console's output: no space left on device\n"
        assert term.attrs() == term.before
    finally:
        term.proc.stderr.close()
        term.close()
        stop(peer)
        cleanup_dir(where)


def test_a_pty_shows_wait_and_reconnect_state_in_raw_mode():
    """State lines on a raw terminal end in CR LF so that the next line starts at column 0."""
    where = short_dir()
    sock = where / "late"
    term = Terminal(["console", "--wait", "--reconnect", str(sock)])
    try:
        assert term.read_until(b"\n") == \
            f"bbv: console for {sock}; Ctrl-] leaves, twice sends it\r\n".encode()
        assert term.read_until(b"\n") == f"bbv: waiting for {sock}\r\n".encode()
        peer = socat_listen(sock, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert term.read_until(b"\n") == f"bbv: connected to {sock}\r\n".encode()
        term.type(b"hi")
        assert peer_reads(peer, 2) == b"hi"
        stop(peer)
        assert term.read_until(b"\n") == \
            f"bbv: {sock} closed; reconnecting when it comes back\r\n".encode()
        term.type(b"\x1d")
        assert term.wait() == 0
        assert term.attrs() == term.before
    finally:
        term.close()
        cleanup_dir(where)

