"""util/sockets: the path limit and the endpoint syntax (pure), and whether a socket file is
served or stale, told by real sockets: a listening one, a bound one nobody listens on, and the
one a SIGKILLed socat leaves behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import need
from console_helpers import cleanup_dir, short_dir, wait_for

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.sockets import Endpoint


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    cleanup_dir(path)


# -- pure --------------------------------------------------------------------------------------
@pytest.mark.pure
def test_path_limit_is_sun_path_less_its_terminator():
    sockets.check_path("/" + "a" * 106, "x")  # 107 bytes
    with pytest.raises(UsageError, match="^x: the socket path is 108 bytes, more than the 107"):
        sockets.check_path("/" + "a" * 107, "x")
    with pytest.raises(UsageError, match="109 bytes"):  # bytes (55 characters)
        sockets.check_path("/" + "é" * 53 + "ab", "x")


@pytest.mark.pure
@pytest.mark.parametrize("text, want", [
    ("unix:/run/a:b,c", Endpoint(path="/run/a:b,c")),
    ("unix:rel", Endpoint(path="rel")),
    ("tcp:host:1", Endpoint(host="host", port=1)),
    ("tcp:[fe80::1]:65535", Endpoint(host="fe80::1", port=65535)),
    ("tcp::4444", Endpoint(port=4444)),
])
def test_parse(text, want):
    assert sockets.parse(text, "--x") == want


@pytest.mark.pure
@pytest.mark.parametrize("text, message", [
    ("unix:", "--x 'unix:': unix: needs a socket path"),
    ("unix:/" + "a" * 107, "--x 'unix:/a+': the socket path is 108 bytes"),
    ("tcp:host", "--x 'tcp:host' is not tcp:HOST:PORT or tcp::PORT"),
    ("tcp:h:0", "--x 'tcp:h:0': port 0 out of range"),
    ("tcp:h:65536", "--x 'tcp:h:65536': port 65536 out of range"),
    ("tcp:h:-1", "--x 'tcp:h:-1' is not tcp:HOST:PORT"),
    ("/bare/path", "--x '/bare/path' is not unix:PATH, tcp:HOST:PORT or tcp::PORT"),
    ("", "--x '' is not"),
])
def test_parse_rejects(text, message):
    with pytest.raises(UsageError, match=f"^{message}"):
        sockets.parse(text, "--x")


@pytest.mark.pure
def test_bare_path_is_a_path_when_the_caller_takes_one():
    assert sockets.parse("/dev/pts/3", "E", bare_path=True) == Endpoint(path="/dev/pts/3")
    with pytest.raises(UsageError):
        sockets.parse("", "E", bare_path=True)
    assert sockets.is_bare("/p") and sockets.is_bare("unixy") and not sockets.is_bare("unix:/p")
    assert not sockets.is_bare("tcp::1")


@pytest.mark.pure
def test_endpoint_names_and_addresses():
    tcp6 = Endpoint(host="::1", port=22)
    assert (str(tcp6), tcp6.name, tcp6.address, tcp6.family) == \
        ("tcp:[::1]:22", "tcp:[::1]:22", ("::1", 22), socket.AF_INET6)
    loop = Endpoint(port=5)
    assert (str(loop), loop.address, loop.family) == ("tcp::5", ("127.0.0.1", 5), socket.AF_INET)
    unix = Endpoint(path="/s")
    assert (str(unix), unix.name, unix.address, unix.family) == \
        ("unix:/s", "/s", "/s", socket.AF_UNIX)


# -- real sockets ------------------------------------------------------------------------------
def test_state_of_real_socket_files(sockdir):
    path = sockdir / "s"
    assert sockets.state(path) == "absent"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert sockets.state(path) == "stale"  # bound, never listening
        server.listen()
        assert sockets.state(path) == "served" and sockets.served(path)
    assert sockets.state(path) == "stale"  # closed: the file stays, nobody accepts
    (sockdir / "f").write_text("")
    assert sockets.state(sockdir / "f") == "other"
    assert not sockets.served(sockdir / "f")


@need("socat")
def test_the_socket_a_killed_server_leaves_is_stale_and_claimed(sockdir):
    path = sockdir / "killed"
    socat = subprocess.Popen(["socat", f"UNIX-LISTEN:{path}", "STDOUT"],
                             stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: sockets.state(path) == "served", "socat to listen")
        os.kill(socat.pid, signal.SIGKILL)
    finally:
        socat.wait()
    assert path.is_socket() and sockets.state(path) == "stale"
    assert sockets.check_free(path, "--c") == path  # a server may replace it
    assert sockets.claim(path, "--c") == path and not path.exists()


def test_check_free_and_claim_refuse_what_is_not_theirs(sockdir):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sockdir / "live"))
        server.listen()
        for check in (sockets.check_free, sockets.claim):
            with pytest.raises(UsageError, match="already served by a running bbv or QEMU"):
                check(sockdir / "live", "--c")
        assert (sockdir / "live").is_socket()
    (sockdir / "file").write_text("keep")
    with pytest.raises(UsageError, match="^--c: exists and is not a socket"):
        sockets.claim(sockdir / "file", "--c")
    assert (sockdir / "file").read_text() == "keep"
    with pytest.raises(UsageError, match="is a directory"):
        sockets.check_free(sockdir, "--c")
    with pytest.raises(UsageError, match=f"directory {sockdir}/no does not exist"):
        sockets.check_free(sockdir / "no" / "s", "--c")
    with pytest.raises(UsageError, match="more than the 107"):
        sockets.check_free(sockdir / ("x" * 120), "--c")


def test_check_free_makes_a_relative_path_absolute(sockdir, monkeypatch):
    monkeypatch.chdir(sockdir)
    assert sockets.check_free(Path("rel.sock"), "--c") == sockdir / "rel.sock"


def test_remove_takes_sockets_only(sockdir):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sockdir / "s"))
    (sockdir / "f").write_text("")
    for name in ("s", "f", "absent"):
        sockets.remove(sockdir / name)
    assert sorted(p.name for p in sockdir.iterdir()) == ["f"]
