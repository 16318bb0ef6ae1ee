"""An attached recording of a real barebox, typed on through its virtio console, replayed byte
for byte: the console's input reaches QEMU's replay log (its chardev on a spare -serial slot)
and arrives whole (paced by bbv's console server). BBV_BAREBOX_IMAGE is a vexpress
barebox-dt-2nd.img; skipped without it."""

from __future__ import annotations

import os
import re

import pytest
from conftest import bbv, need
from console_helpers import Terminal

IMAGE = os.environ.get("BBV_BAREBOX_IMAGE", "")
pytestmark = [
    pytest.mark.barebox, pytest.mark.qemu, need("qemu-system-arm"),
    pytest.mark.skipif(not IMAGE, reason="needs BBV_BAREBOX_IMAGE (vexpress barebox-dt-2nd.img)"),
]


def test_an_attached_recording_typed_on_the_virtio_console_replays(bbv_dirs, tmp_path):
    rec = tmp_path / "rec"
    term = Terminal(["run", "-t", "vexpress", "--image", IMAGE, "--rng", "--attach",
                     "--record", str(rec)])
    try:
        term.read_until(b"twice sends it")
        term.read_until(b"any to stop autoboot")
        term.type(b" ")
        term.read_until(b"barebox@")
        term.type(b"version; echo typed-$?\r")  # a burst: the server paces it
        term.read_until(b"typed-0")
        term.type(b"\x1d")
        assert term.wait() == 0
    finally:
        term.close()
    console = (rec / "console.log").read_bytes()
    assert b"version; echo typed-$?" in console and b"typed-0" in console
    serial = (rec / "serial.log").read_bytes()
    for _ in range(2):
        replayed = bbv("replay", str(rec), timeout=180)
        assert replayed.returncode == 0, replayed.stderr
        said = replayed.stderr
        assert f"matches the recording: {len(serial)} bytes of serial output" in said
        assert f"matches the recording: {len(console)} bytes of virtio console output" in said
        assert re.search(rb"typed-0", (rec / "replayed" / "console.log").read_bytes())
