"""`bbv run --console PATH` serving the console itself, end to end with real QEMU (the tiny
guest of tests/tinyguest: its virtio console stays silent, which is all these need): the
socket and FIFOs go on every exit, a SIGKILLed bbv's leftovers are replaced by the next run,
and `bbv console` on a silent console says what to type."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import ROOT, bbv
from console_helpers import PATIENCE, Terminal, cleanup_dir, short_dir, wait_for
from process_helpers import qemu_pids
from test_scripted import guest, wait_until  # noqa: F401 - guest is a fixture

from barebox_virtio_cli.util.sockets import served

pytestmark = [pytest.mark.qemu]


@pytest.fixture
def where():
    path = short_dir()
    (path / "tmp").mkdir()
    yield path
    cleanup_dir(path)


def boot(guest: Path, where: Path) -> Terminal:  # noqa: F811
    term = Terminal(["run", "--target", "vexpress", "--image", str(guest), "--console",
                     str(where / "c"), "--console-log", str(where / "log")],
                    env={**os.environ, "TMPDIR": str(where / "tmp")})
    term.read_until(b"bbv: virtio console: bbv console ")
    wait_for(lambda: qemu_pids(guest), "QEMU to start")
    return term


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                         (signal.SIGINT, 130)])
def test_signals_remove_the_socket_and_the_fifos(guest, where, sig, status):  # noqa: F811
    term = boot(guest, where)
    try:
        assert served(where / "c")
        assert [p.name[:7] for p in (where / "tmp").iterdir()] == ["bbv-vc-"]
        term.proc.send_signal(sig)
        assert term.wait() == status
        assert term.attrs() == term.before
    finally:
        term.close()
    assert not (where / "c").exists()
    assert list((where / "tmp").iterdir()) == []
    assert wait_until(lambda: not qemu_pids(guest), 10)
    assert b"Traceback" not in term.seen


def test_a_sigkilled_bbvs_socket_and_fifos_are_replaced(guest, where):  # noqa: F811
    first = boot(guest, where)
    try:
        first.proc.kill()
        first.proc.wait()
        # QEMU follows (parent-death signal); the socket and the FIFO dir stay behind.
        assert wait_until(lambda: not qemu_pids(guest), 10)
        left = list((where / "tmp").iterdir())
        assert len(left) == 1 and (where / "c").is_socket() and not served(where / "c")
    finally:
        first.close()
    second = boot(guest, where)
    try:
        assert served(where / "c")
        now = list((where / "tmp").iterdir())
        assert len(now) == 1 and now != left  # the dead one's FIFO dir went, ours is new
        second.proc.send_signal(signal.SIGTERM)
        assert second.wait() == 143
    finally:
        second.close()


def test_bbv_console_on_a_silent_console_says_what_to_type(guest, where):  # noqa: F811
    term = boot(guest, where)
    client = Terminal(["console", str(where / "c")])
    try:
        said = client.read_until(b"at the serial console's prompt").decode()
        assert "virtio console may be inactive: type 'cs1.active=ioe'" in said
        assert "'cs2.active=ioe' (malta)" in said
        client.type(b"\x1d")
        assert client.wait() == 0
    finally:
        client.close()
        term.close()


def test_dry_run_prints_qemus_own_socket(guest, where):  # noqa: F811
    out = bbv("run", "--target", "vexpress", "--image", str(guest), "--console",
              str(where / "c"), "--dry-run", timeout=PATIENCE)
    assert out.returncode == 0
    assert f"socket,id=con0,path={where / 'c'},server=on,wait=off" in out.stdout
    assert not (where / "c").exists()


def test_a_console_log_that_cannot_be_written_is_one_line_exit_2(guest, where):  # noqa: F811
    out = bbv("run", "--target", "vexpress", "--image", str(guest), "--console",
              str(where / "c"), "--console-log", str(where / "no" / "log"), timeout=PATIENCE)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"bbv: error: --console-log {where / 'no' / 'log'}: no such file or directory"]
    assert not (where / "c").exists() and not qemu_pids(guest)


@pytest.fixture
def no_fw_cfg_target(tmp_path, monkeypatch) -> str:
    """vexpress as malta is: no fw_cfg, so bbv must type the activation on the serial line."""
    text = (ROOT / "configs" / "vexpress.toml").read_text()
    text = text.replace('arch_names = ["arm", "armv7"]', 'arch_names = ["tinyarm"]')
    text = text.replace("fw_cfg = true", "fw_cfg = false").replace('"cs1"', '"cs2"')
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "tinymalta.toml").write_text(text)
    monkeypatch.setenv("BBV_TARGETS_PATH", str(tmp_path / "targets"))
    return "tinymalta"


def test_foreground_types_the_activation_and_stays_a_terminal(guest, where,  # noqa: F811
                                                              no_fw_cfg_target):
    term = Terminal(["run", "--target", no_fw_cfg_target, "--image", str(guest), "--console",
                     str(where / "c")], env={**os.environ, "TMPDIR": str(where / "tmp")})
    try:
        said = term.read_until(b"at barebox's first prompt on the serial console").decode()
        assert "bbv types 'cs2.active=ioe'" in said
        # bbv stopped autoboot and typed the command at the prompt; the guest echoes it
        term.read_until(b"bbv-tiny:/\x1b[0m cs2.active=ioe\r")
        term.read_until(b"bbv-tiny:/\x1b[0m ")
        assert term.raw_now()  # keys go through bbv to QEMU unchanged
        term.type(b"echo typed here\r")
        term.read_until(b"typed here")
        term.type(b"\x01x")  # QEMU's Ctrl-A X still quits
        assert term.wait() == 0
        assert term.attrs() == term.before
    finally:
        term.close()
    assert not (where / "c").exists() and list((where / "tmp").iterdir()) == []
    assert b"Traceback" not in term.seen
