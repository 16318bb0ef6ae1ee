"""Pure console logic: endpoints, escape keys, the escape state machine, line stamps, and the
typing that activates a virtio console over the serial line."""

from __future__ import annotations

import stat
import time

import pytest

from barebox_virtio_cli.commands.console import parse_endpoint, parse_wait
from barebox_virtio_cli.console.logic import (
    EscapeFilter,
    LineStamper,
    escape_name,
    parse_escape,
    path_kind,
)
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util.sockets import Endpoint

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("text, want", [
    ("/tmp/foo", Endpoint(path="/tmp/foo")),
    ("rel/sock", Endpoint(path="rel/sock")),
    ("unix:/tmp/a:b", Endpoint(path="/tmp/a:b")),
    ("tcp:localhost:4444", Endpoint(host="localhost", port=4444)),
    ("tcp:[::1]:22", Endpoint(host="::1", port=22)),
    ("tcp::80", Endpoint(host="", port=80)),
    ("/dev/pts/3", Endpoint(path="/dev/pts/3")),
])
def test_parse_endpoint(text, want):
    assert parse_endpoint(text) == want


@pytest.mark.parametrize("text", ["", "unix:", "tcp:host", "tcp:h:0", "tcp:h:65536",
                                  "tcp:h:http", "unix:/" + "a" * 107])
def test_parse_endpoint_rejects(text):
    with pytest.raises(UsageError):
        parse_endpoint(text)


def test_endpoint_name_is_the_path_or_the_tcp_address():
    assert parse_endpoint("tcp:h:1").name == "tcp:h:1"
    assert parse_endpoint("tcp:[::1]:1").name == "tcp:[::1]:1"
    assert parse_endpoint("unix:/x").name == "/x"
    assert parse_endpoint("tcp::80").address == ("127.0.0.1", 80)


def test_path_kind():
    assert path_kind("/p", stat.S_IFSOCK) == "unix"
    assert path_kind("/p", stat.S_IFCHR) == "pty"
    with pytest.raises(UsageError, match="/p: not a unix socket or a terminal"):
        path_kind("/p", stat.S_IFREG)
    with pytest.raises(UsageError, match="/p: not a unix socket$"):
        path_kind("/p", stat.S_IFCHR, pty=False)


@pytest.mark.parametrize("text, byte", [("^]", 0x1D), ("^a", 0x01), ("^A", 0x01),
                                        ("ctrl-]", 0x1D), ("C-x", 0x18), ("ctrl+b", 0x02),
                                        ("^?", 0x7F), ("~", ord("~")), ("none", None)])
def test_parse_escape(text, byte):
    assert parse_escape(text) == byte


@pytest.mark.parametrize("text", ["", "^", "^1", "ab", "ctrl-", "é"])
def test_parse_escape_rejects(text):
    with pytest.raises(UsageError):
        parse_escape(text)


def test_escape_name():
    assert escape_name(0x1D) == "Ctrl-]"
    assert escape_name(ord("~")) == "~"


def test_escape_filter_passes_other_bytes_untouched():
    esc = EscapeFilter(0x1D)
    data = bytes(range(256)).replace(b"\x1d", b"")
    assert esc.feed(data, 0.0) == data
    assert not esc.quit and esc.deadline is None


def test_escape_alone_leaves_when_the_window_ends():
    esc = EscapeFilter(0x1D, window=0.5)
    assert esc.feed(b"ab\x1d", 10.0) == b"ab"
    assert esc.deadline == 10.5 and not esc.quit
    esc.expire(10.4)
    assert not esc.quit
    esc.expire(10.5)
    assert esc.quit


def test_escape_then_another_key_leaves_at_once_and_drops_the_rest():
    esc = EscapeFilter(0x1D)
    assert esc.feed(b"x\x1dq rest", 0.0) == b"x"
    assert esc.quit


def test_escape_twice_sends_one_through_also_across_reads():
    esc = EscapeFilter(0x1D)
    assert esc.feed(b"a\x1d\x1db", 0.0) == b"a\x1db"
    assert esc.feed(b"\x1d", 1.0) == b""
    assert esc.feed(b"\x1dc", 1.1) == b"\x1dc"
    assert not esc.quit and esc.deadline is None


def test_no_escape_key_is_binary_safe():
    esc = EscapeFilter(None)
    assert esc.feed(b"\x1d\x1d\x00", 0.0) == b"\x1d\x1d\x00"
    assert esc.deadline is None


def test_line_stamper_prefixes_each_line_once():
    stamper = LineStamper()
    now = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)) + 0.25
    out = stamper.feed(b"one\r\ntw", now) + stamper.feed(b"o\nthree", now + 1)
    assert out == (b"2026-01-02 03:04:05.250 one\n2026-01-02 03:04:05.250 two\n"
                   b"2026-01-02 03:04:06.250 three")


@pytest.mark.parametrize("value, endpoint, want", [
    (None, "/s", (None, "/s")),
    ("", "/s", (float("inf"), "/s")),
    ("2.5", "/s", (2.5, "/s")),
    ("/s", None, (float("inf"), "/s")),  # `--wait /s`: click took the endpoint as the value
])
def test_parse_wait(value, endpoint, want):
    assert parse_wait(value, endpoint) == want


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_parse_wait_rejects(value):
    with pytest.raises(UsageError):
        parse_wait(value, "/s")
