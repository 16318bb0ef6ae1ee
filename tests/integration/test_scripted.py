"""Scripted boots (`bbv run --exec/--expect`) against real QEMU, with a tiny barebox stand-in
that the tests assemble themselves (tests/tinyguest/tinyguest.s): banner, autoboot line, a
barebox-like prompt on the PL011 serial port, and a few commands (echo, true, false, ls, hang)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import BBV, bbv, need
from process_helpers import CROSS, TINYGUEST, assemble, qemu_pids

SOURCE = TINYGUEST / "tinyguest.s"
pytestmark = [pytest.mark.qemu, need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld",
                                     f"{CROSS}objcopy")]


@pytest.fixture(scope="session")
def guest(tmp_path_factory) -> Path:
    """The stand-in as a raw image, linked where QEMU's ARM virt loads a -kernel image."""
    return assemble(SOURCE, tmp_path_factory.mktemp("tinyguest"), "guest")


def scripted(guest: Path, *args: str) -> subprocess.CompletedProcess:
    result = bbv("run", "--target", "vexpress", "--image", str(guest), *args, timeout=120)
    assert not qemu_running(guest), "bbv left QEMU running"
    return result


def qemu_running(image: Path) -> bool:
    return bool(qemu_pids(image))


def wait_until(predicate, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_commands_run_and_expectations_hold(guest):
    result = scripted(guest, "--exec", "ls /dev", "--exec", "echo hello $?",
                      "--expect", "virtioblk0", "--expect", r"^hello 0$")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["$ ls /dev", "full  hwrng0  null  virtioblk0  virtioblk1  zero"]
    assert lines[2].startswith("  [ok] exit status 0, ")
    assert "expect /^hello 0$/: found 'hello 0'" in result.stdout
    assert "bbv: PASS: 2/2 commands passed, 2/2 expectations met" in result.stderr


def test_failed_expectation_and_failing_command_exit_1(guest):
    result = scripted(guest, "--exec", "false", "--exec", "frobnicate", "--exec", "echo x",
                      "--expect", "virtioblk9", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["error"] is None
    assert [(c["status"], c["exit_status"]) for c in data["commands"]] == \
        [("failed", 1), ("failed", 1), ("passed", 0)]
    assert data["commands"][1]["output"] == "Unknown command 'frobnicate' - try 'help'"
    assert data["commands"][2]["output"] == "x"  # status of the failed command is not kept
    assert data["expectations"] == [{"pattern": "virtioblk9", "match": None, "ok": False}]
    assert data["last_lines"] == ["Unknown command 'frobnicate' - try 'help'", "x"]
    assert "bbv-tiny" in data["boot"]["output"] and data["boot"]["status"] == "passed"


def test_timeout_shows_the_last_lines_and_stops_qemu(guest, tmp_path):
    junit = tmp_path / "report.xml"
    result = scripted(guest, "--exec", "echo before", "--exec", "hang", "--exec", "true",
                      "--timeout", "2", "--junit", str(junit))
    assert result.returncode == 1
    err = result.stderr
    assert "bbv: error: timed out after 2 s waiting for 'hang' to finish on the serial " \
           "console" in err
    tail = err.split("bbv: last lines barebox printed:\n")[1].splitlines()
    last = [line[4:] for line in tail if line.startswith("    ")]
    assert last[-1].startswith("barebox@bbv-tiny:/ hang; ")
    assert "before" in last and "Hit any to stop autoboot:    3" in last
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["boot", "echo before", "hang", "true"]
    assert cases["echo before"].find("system-out").text == "before"
    assert cases["hang"].find("error").get("type") == "timeout"
    assert cases["true"].find("skipped") is not None
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped")] == \
        ["4", "0", "1", "1"]


def test_junit_and_json_of_a_passing_run(guest, tmp_path):
    junit = tmp_path / "report.xml"
    junit.write_text('<?xml version="1.0"?><testsuites/>')  # an earlier report may be replaced
    result = scripted(guest, "--exec", "ls", "--expect", "hwrng0", "--expect", "null",
                      "--junit", str(junit), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["console"] == "serial"
    assert data["commands"][0]["duration"] > 0 and data["boot"]["duration"] > 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert [(c.get("classname"), c.get("name")) for c in suite.findall("testcase")] == [
        ("bbv.vexpress.boot", "boot"), ("bbv.vexpress.exec", "ls"),
        ("bbv.vexpress.expect", "hwrng0"), ("bbv.vexpress.expect", "null")]
    assert [suite.get(k) for k in ("tests", "failures", "errors")] == ["4", "0", "0"]


def test_expect_without_exec_checks_the_boot_log(guest):
    assert scripted(guest, "--expect", r"barebox 2099\.01").returncode == 0
    result = scripted(guest, "--expect", "Linux version")
    assert result.returncode == 1
    assert "expect /Linux version/: NOT found in the boot log" in result.stdout
    tail = result.stderr.split("bbv: last lines barebox printed:\n")[1].splitlines()
    assert "    Hit any to stop autoboot:    3" in tail


def test_failed_expectation_text_report(guest):
    result = scripted(guest, "--exec", "ls /dev", "--expect", "virtioblk9")
    assert result.returncode == 1
    assert "expect /virtioblk9/: NOT found in the commands' output" in result.stdout
    assert "virtioblk1" in result.stdout  # the output it was matched against is on screen
    assert "bbv: FAIL: 1/1 commands passed, 0/1 expectations met" in result.stderr


@pytest.mark.parametrize("console, sig, status", [
    (False, signal.SIGINT, 130), (False, signal.SIGTERM, 128 + signal.SIGTERM),
    (False, signal.SIGKILL, -signal.SIGKILL),
    (True, signal.SIGTERM, 128 + signal.SIGTERM), (True, signal.SIGHUP, 128 + signal.SIGHUP)])
def test_signals_during_a_scripted_boot_never_leave_qemu_running(guest, tmp_path, console, sig,
                                                                 status):
    # On the serial console the guest hangs in 'hang'; with --console bbv waits in vain for an
    # answer on the virtio console (the tiny guest has no driver for it).
    junit, tmp = tmp_path / "r.xml", tmp_path / "tmp"
    tmp.mkdir()
    args = ["--console", "--exec", "true"] if console else ["--exec", "hang"]
    proc = subprocess.Popen([*BBV, "run", "--target", "vexpress", "--image", str(guest), *args,
                             "--timeout", "60", "--junit", str(junit)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        assert wait_until(lambda: qemu_pids(guest)), "QEMU did not start"
        qemu = qemu_pids(guest)
        time.sleep(1)  # the session waits by now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    if sig != signal.SIGKILL:  # the one line saying why, as in every mode
        assert err.endswith(f"bbv: stopped by {sig.name}\n"), err
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in qemu), 10)
    assert not junit.exists()
    if sig != signal.SIGKILL:
        assert list(tmp.iterdir()) == []  # the virtio console's FIFOs are gone


def test_no_answer_on_the_virtio_console_is_a_clear_timeout(guest, tmp_path):
    result = bbv("run", "--target", "vexpress", "--image", str(guest), "--console", "--exec",
                 "true", "--timeout", "2", timeout=60, env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 1
    assert "bbv: error: no answer on the virtio console within 2 s: is CONFIG_VIRTIO_CONSOLE " \
           "in this barebox" in result.stderr
    assert "scripted session on the virtio console" in result.stderr
    assert list(tmp_path.iterdir()) == [] and not qemu_running(guest)


def test_qemu_failing_to_start_shows_its_error(guest):
    result = scripted(guest, "--exec", "true", "--qemu-arg=-no-such-option")
    assert result.returncode == 1
    assert "bbv: error: QEMU exited while bbv waited for the autoboot countdown" in result.stderr
    assert "-no-such-option" in result.stderr.split("QEMU said:")[1]
    assert "last lines barebox printed" not in result.stderr  # barebox never ran


@pytest.mark.parametrize("args, needle", [
    (["--junit", "r.xml"], "--junit belongs to a scripted boot"),
    (["--json"], "--json belongs to a scripted boot"),
    (["--exec", "ls", "--expect", "("], "--expect '(' is not a valid regular expression"),
    (["--exec", "ls", "--expect", ""], "--expect '' matches any output"),
    (["--exec", "ls\nls"], "has a line break"),
    (["--exec", " "], "is empty"),
    (["--exec", "ls", "--timeout", "0"], "--timeout"),
    (["--exec", "ls", "--junit", "/nonexistent/r.xml"], "directory /nonexistent does not exist"),
])
def test_bad_input_is_one_line_exit_2(guest, args, needle):
    result = scripted(guest, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and needle in result.stderr


def test_junit_never_replaces_another_file(guest, tmp_path):
    victim = tmp_path / "notes.xml"
    victim.write_text("my notes\n")
    result = scripted(guest, "--exec", "ls", "--junit", str(victim))
    assert result.returncode == 2 and "exists and is not a JUnit report" in result.stderr
    assert victim.read_text() == "my notes\n"


def test_a_report_that_cannot_be_written_fails_the_run(guest):
    result = scripted(guest, "--exec", "true", "--junit", "/proc/bbv-report.xml")
    assert result.returncode == 1
    assert "bbv: error: cannot write --junit /proc/bbv-report.xml: " in result.stderr


def test_bbv_run_without_exec_does_not_load_pexpect(guest):
    code = ("import sys; from barebox_virtio_cli.cli import main\n"
            "try: main(['run', '--target', 'vexpress', '--image', sys.argv[1], '-n'])\n"
            "except SystemExit: pass\n"
            "print(*(name in sys.modules for name in ('pexpect', 'requests')))")
    out = subprocess.run([sys.executable, "-c", code, str(guest)], capture_output=True,
                         text=True, env={**os.environ}, check=True).stdout
    assert out.splitlines()[-1] == "False False"



def test_disk_names_that_are_not_utf8_boot(guest, tmp_path):
    """pexpect encodes its arguments as strict UTF-8: a --blk file name that is not UTF-8
    (first contact II, row 6) made a scripted boot fail with a traceback."""
    disk = os.path.join(os.fsencode(tmp_path), b"disk\xff.img")
    with open(disk, "wb") as fh:
        fh.truncate(1 << 20)
    done = subprocess.run([*BBV, "run", "--target", "vexpress", "--image", str(guest), "--blk",
                           disk, "--exec", "true"], capture_output=True, timeout=120)
    assert b"Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert not qemu_running(guest)


def test_deterministic_prints_boot_to_prompt_in_guest_time_the_same_every_run(guest):
    """The tiny guest logs its boot after a busy loop, and when the key came, from the generic
    timer: under --deterministic the boot message's time is the same every run and is the one
    bbv prints; the message logged at the key (whenever bbv typed) does not count."""
    lines, numbers = [], []
    for _ in range(2):
        result = scripted(guest, "--deterministic", "--exec", "dmesg -t")
        assert result.returncode == 0, result.stderr
        [line] = [x for x in result.stderr.splitlines() if "in guest time" in x]
        lines.append(line)
        own = re.search(r"^\[\s*(\d+)us\] tiny: booted after a busy loop$", result.stdout, re.M)
        assert own and "tiny: autoboot stopped" in result.stdout
        numbers.append(int(own[1]))
        assert line == (f"bbv: boot to prompt in guest time: {own[1]} us (barebox's last boot "
                        "message, 'tiny: booted after a busy loop')")
    assert lines[0] == lines[1] and numbers[0] == numbers[1] > 0
    as_json = scripted(guest, "--deterministic", "--exec", "true", "--json")
    assert json.loads(as_json.stdout)["guest_time"] == {
        "us": numbers[0], "message": "tiny: booted after a busy loop"}
    plain = scripted(guest, "--exec", "true")
    assert plain.returncode == 0 and "guest time" not in plain.stderr
    assert json.loads(scripted(guest, "--exec", "true", "--json").stdout)["guest_time"] is None
