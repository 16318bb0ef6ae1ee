"""Scripted boots against a real barebox: BBV_BAREBOX_IMAGE is a vexpress barebox-dt-2nd.img
(multi_v7_defconfig, e.g. from `bbv build vexpress`); skipped without it."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import bbv, need
from process_helpers import qemu_pids

IMAGE = os.environ.get("BBV_BAREBOX_IMAGE", "")
pytestmark = [
    pytest.mark.barebox, pytest.mark.qemu, need("qemu-system-arm"),
    pytest.mark.skipif(not IMAGE, reason="needs BBV_BAREBOX_IMAGE (vexpress barebox-dt-2nd.img)"),
]
EXAMPLE = ["--blk", "a.img", "--blk", "b.img", "--rng", "--exec", "ls /dev",
           "--expect", "virtioblk0", "--expect", "virtioblk1", "--expect", "hwrng0"]


@pytest.fixture
def disks(tmp_path) -> Path:
    for name in ("a.img", "b.img"):
        (tmp_path / name).write_bytes(bytes(1 << 20))
    return tmp_path


def bbv_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = bbv("run", "--target", "vexpress", "--image", IMAGE, *args, cwd=cwd)
    assert not qemu_pids(Path(IMAGE).resolve()), "bbv left QEMU running"
    return result


def test_the_issue_example_on_the_serial_console(disks):
    result = bbv_run(disks, *EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("$ ls /dev\n")
    for name in ("virtioblk0", "virtioblk1", "hwrng0"):
        assert f"expect /{name}/: found '{name}'" in result.stdout
    assert "scripted session on the serial console" in result.stderr
    assert "bbv: PASS: 1/1 commands passed, 3/3 expectations met" in result.stderr


def test_the_example_on_the_virtio_console(disks):
    result = bbv_run(disks, "--console", "--json", *EXAMPLE)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["console"] == "virtio"
    assert "cs1" in data["commands"][0]["output"].split()
    assert "barebox" in data["boot"]["output"]


def test_the_virtio_session_goes_on_without_the_serial_console(disks):
    # With the serial console switched off first, only a session on the virtio console goes on.
    result = bbv_run(disks, "--console", "--exec", "cs0.active=", "--exec", "echo on-virtio",
                     "--expect", "^on-virtio$")
    assert result.returncode == 0, result.stderr
    assert "scripted session on the virtio console" in result.stderr


def test_exit_status_timeout_and_junit_from_real_barebox(disks):
    junit = disks / "report.xml"
    result = bbv_run(disks, "--exec", "ls /nonexistent", "--exec", "sleep 30", "--exec", "true",
                     "--timeout", "3", "--junit", str(junit))
    assert result.returncode == 1
    assert "ls: /nonexistent: No such file or directory" in result.stdout
    assert "[FAILED] exit status 1" in result.stdout
    assert "bbv: error: timed out after 3 s waiting for 'sleep 30' to finish" in result.stderr
    tail = result.stderr.split("bbv: last lines barebox printed:\n")[1].splitlines()
    assert any("sleep 30; echo bbv-rc-" in line for line in tail)
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["boot", "ls /nonexistent", "sleep 30", "true"]
    assert cases[1].find("failure").get("message") == "exit status 1"
    assert cases[2].find("error").get("type") == "timeout"
    assert cases[3].find("skipped") is not None


def test_the_longest_allowed_command_reaches_barebox_whole(disks):
    # bbv refuses one character more (test_scripted_logic); barebox must take this one whole.
    from barebox_virtio_cli.session.shell import LINE_MAX, NONCE_LENGTH, command_line

    width = LINE_MAX - len(command_line("", "0" * NONCE_LENGTH)) - len("echo ")
    result = bbv_run(disks, "--exec", "echo " + "x" * width, "--expect", f"^x{{{width}}}$",
                     "--timeout", "10")
    assert result.returncode == 0, result.stderr
