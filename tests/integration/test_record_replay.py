"""bbv run --record and bbv replay against real QEMU, with the tiny guest (tests/tinyguest):
a scripted run that reads a virtio RNG and a disk (the guest's `rng` and `blk`, through modern
virtio-mmio as barebox does) recorded and replayed byte for byte, the refusals
(not a recording, a changed image, another QEMU version), and a signal during either."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import BBV, bbv, error_line, need, one_line_error, snapshot
from process_helpers import CROSS, TINYGUEST, assemble, qemu_pids
from test_gdb import Output, build  # noqa: F401 (build: the symbols' fixture)

from barebox_virtio_cli.debug.endpoint import free_loopback_port

pytestmark = [pytest.mark.qemu, need("qemu-system-arm", "gdb-multiarch", f"{CROSS}as",
                                     f"{CROSS}ld", f"{CROSS}objcopy", "qemu-img")]


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Path:
    return assemble(TINYGUEST / "tinyguest.s", tmp_path_factory.mktemp("rrguest"))


SECTOR0 = b"bbv disk sector0"  # the disk fixture's first 16 bytes, as the guest's `blk` prints


@pytest.fixture
def disk(tmp_path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(SECTOR0 + (bytes(range(256)) * 4096)[len(SECTOR0):])
    return path


def record(guest: Path, disk: Path, directory: Path, *extra: str):
    return bbv("run", "-t", "vexpress", "--image", str(guest), "--rng", "--blk", str(disk),
               "--record", str(directory), "--exec", "echo recorded $?", "--exec", "rng",
               "--exec", "blk", "--exec", "ls", "--expect", "virtioblk0", *extra, timeout=120)


def read_hex(serial: bytes) -> tuple[bytes, bytes]:
    """The 16 bytes the guest's `rng` and then `blk` printed in hex, from a transcript."""
    found = re.findall(rb"^([0-9a-f]{32})\r$", serial, re.M)
    assert len(found) == 2, serial
    rng, blk = found
    return rng, blk


def test_a_recorded_scripted_run_replays_byte_for_byte(bbv_dirs, guest, disk, tmp_path):
    rec = tmp_path / "rec"
    done = record(guest, disk, rec)
    assert done.returncode == 0, done.stderr
    assert f"bbv replay {rec}" in done.stderr
    record_json = json.loads((rec / "record.json").read_text())
    assert record_json["devices"] == {"blk": 1, "rng": 1} and record_json["exit_status"] == 0
    assert (rec / "disks" / "blk0.img").read_bytes() == disk.read_bytes()
    command = (rec / "command.sh").read_text()
    assert "rr=record" in command and "driver=blkreplay" in command
    serial = (rec / "serial.log").read_bytes()
    assert b"recorded 0" in serial and b"virtioblk0" in serial
    rng, blk = read_hex(serial)
    assert blk == SECTOR0.hex().encode()  # read from the disk, through virtio-blk
    other = tmp_path / "other"  # another recording: other random bytes, from the host
    assert record(guest, disk, other).returncode == 0
    other_rng, other_blk = read_hex((other / "serial.log").read_bytes())
    assert other_rng != rng and other_blk == blk

    disk.write_bytes(b"changed afterwards" * 100)  # the recording has its own copy
    replayed = bbv("replay", str(rec), timeout=120, text=False)
    stderr = replayed.stderr.decode()
    assert replayed.returncode == 0, stderr
    assert "matches the recording" in stderr and f"{len(serial)} bytes" in stderr
    assert (rec / "replayed" / "serial.log").read_bytes() == serial
    assert b"recorded 0" in replayed.stdout  # shown as it replays
    assert read_hex(replayed.stdout) == (rng, blk)
    # ... with its line ended after barebox's last prompt, before bbv's verdict
    assert not serial.endswith(b"\n") and replayed.stdout.endswith(b"\n")
    assert not qemu_pids(guest)

    # past the banner: the guest busy-loops about 4M instructions before it prints
    until = bbv("replay", str(rec), "--until", "10000000", timeout=120)
    assert until.returncode == 0, until.stderr
    assert "stopped at instruction 10000000" in until.stderr
    assert "matches the recording up to where it stopped" in until.stderr
    assert 0 < len((rec / "replayed" / "serial.log").read_bytes()) < len(serial)
    assert not qemu_pids(guest)
    one_line_error(bbv("replay", str(rec), "--until", str(2**63)), 2, "--until")


def test_the_guest_says_which_device_is_missing(bbv_dirs, guest, tmp_path):
    """Without --rng or --blk the guest's `rng` and `blk` fail, so that the recorded run's
    bytes can only have come from the devices."""
    result = bbv("run", "-t", "vexpress", "--image", str(guest), "--exec", "rng", "--exec",
                 "blk", timeout=60)
    assert result.returncode == 1 and result.stdout.count("[FAILED] exit status 1") == 2
    assert "rng: no virtio-rng device" in result.stdout
    assert "blk: no virtio-blk device" in result.stdout
    assert not qemu_pids(guest)


def test_what_is_not_a_recording_or_would_diverge_is_refused(bbv_dirs, guest, disk, tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    one_line_error(record(guest, disk, foreign), 2, "not a recording")
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    one_line_error(bbv("replay", str(foreign)), 2, "is not a recording")

    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    record_file = rec / "record.json"
    data = json.loads(record_file.read_text())
    data["qemu"]["version"] = "6.2.0"
    record_file.write_text(json.dumps(data))
    one_line_error(bbv("replay", str(rec)), 2, "recorded with QEMU 6.2.0", "would diverge")
    data["qemu"]["version"] = json.loads(
        (rec / "record.json").read_text())["qemu"]["version"]
    record_file.write_text(json.dumps(json.loads(record_file.read_text()) | {"qemu": {
        "binary": data["qemu"]["binary"], "version": _qemu_version()}}))
    original = guest.read_bytes()
    try:
        guest.write_bytes(original + b"\0")
        one_line_error(bbv("replay", str(rec)), 2, "changed since the recording")
    finally:
        guest.write_bytes(original)
    one_line_error(record(guest, disk, rec), 2, "holds a recording already")

    log = bytearray((rec / "replay.bin").read_bytes())  # a damaged log: QEMU's own words
    (rec / "replay.bin").write_bytes(log[:len(log) // 2])
    error_line(bbv("replay", str(rec), timeout=120), 1, "the replay diverged",
               "error reading the replay data")
    assert not qemu_pids(guest)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda rec: (rec / "record.json").write_text("{half"), ("record.json is damaged",
                                                             "not a JSON object")),
    (lambda rec: _drop(rec, "qemu"), ("record.json is damaged", "'qemu' missing")),
    (lambda rec: _drop(rec, "spec"), ("record.json is damaged", "'spec' missing")),
    (lambda rec: (rec / "replay.bin").write_bytes(b""), ("replay.bin is damaged", "empty")),
])
def test_a_damaged_recording_is_named_in_one_line(bbv_dirs, guest, disk, tmp_path, damage,
                                                   words):
    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    damage(rec)
    one_line_error(bbv("replay", str(rec), timeout=120), 2, *words, "bbv run --record")
    assert not qemu_pids(guest)


def test_qemu_refusing_a_replay_at_its_start_is_quoted(bbv_dirs, guest, disk, tmp_path):
    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    data = json.loads((rec / "record.json").read_text())
    data["spec"]["cpu"] = "no-such-cpu"
    (rec / "record.json").write_text(json.dumps(data))
    error_line(bbv("replay", str(rec), timeout=120), 1, "QEMU ended the replay at its start",
               "no-such-cpu")
    assert not qemu_pids(guest)


@pytest.mark.parametrize("lost", ["serial.log", "disks/blk0.img"])
def test_a_recording_lacking_a_file_is_named_before_qemu_starts(bbv_dirs, guest, disk, tmp_path,
                                                                lost):
    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    (rec / lost).unlink()
    started = time.monotonic()
    one_line_error(bbv("replay", str(rec), timeout=120), 2,
                   f"{rec} is an incomplete recording: {lost} is missing", "bbv run --record")
    assert time.monotonic() - started < 10 and not (rec / "replayed").exists()
    assert not qemu_pids(guest)


def _drop(rec: Path, key: str) -> None:
    data = json.loads((rec / "record.json").read_text())
    del data[key]
    (rec / "record.json").write_text(json.dumps(data))


def _qemu_version() -> str:
    out = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout
    return out.split()[3]


def test_what_cannot_be_recorded_is_refused(bbv_dirs, guest, disk, tmp_path):
    one_line_error(record(guest, disk, tmp_path / "r1", "--fs", str(tmp_path)), 2,
                   "virtio 9p cannot be recorded")
    assert not (tmp_path / "r1").exists()
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "notes.txt").write_text("mine")
    for mode in ("--attach", "--keep-running"):  # the attached modes check DIR as well
        result = bbv("run", "-t", "vexpress", "--image", str(guest), mode, "--record",
                     str(tmp_path / "r2"))
        one_line_error(result, 2, "holds files that are not a recording")
        one_line_error(bbv("run", "-t", "vexpress", "--image", str(guest), mode, "--record",
                           str(tmp_path / "r2x"), "--exec", "version"), 2, "is interactive")
    assert (tmp_path / "r2" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "r2x").exists()
    one_line_error(record(guest, disk, tmp_path / "r3", "--screenshot", str(tmp_path / "s.png")),
                   2, "--screenshot (QEMU replays no display) cannot be recorded")
    assert not (tmp_path / "r3").exists() and not (tmp_path / "s.png").exists()
    one_line_error(record(guest, disk, Path("/proc/bbv-rec")), 2,
                   "--record /proc/bbv-rec: cannot make it")
    one_line_error(record(guest, disk, tmp_path / "r4", "--deterministic"), 2,
                   "--deterministic and --record exclude each other")
    assert not (tmp_path / "r4").exists()


def test_an_empty_directory_name_is_refused_not_taken_for_here(bbv_dirs, guest, disk, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    for given in ("", " "):
        result = bbv("run", "-t", "vexpress", "--image", str(guest), "--record", given,
                     "--exec", "true", cwd=here)
        one_line_error(result, 2, f"--record '{given}' is empty", "a new or empty directory")
        one_line_error(bbv("replay", given, cwd=here), 2, f"DIRECTORY '{given}' is empty")
    assert list(here.iterdir()) == []
    (here / "notes.txt").write_text("mine")
    one_line_error(bbv("replay", "notes.txt", cwd=here), 2, "is a file")
    one_line_error(record(guest, disk, here / "notes.txt"), 2, "exists and is not a directory")
    assert [p.name for p in here.iterdir()] == ["notes.txt"]
    assert (here / "notes.txt").read_text() == "mine"


def test_one_replay_of_a_recording_at_a_time(bbv_dirs, guest, disk, tmp_path):
    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    first = subprocess.Popen([*BBV, "replay", str(rec), "--gdb"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while "bbv gdb" not in (line := first.stderr.readline()):  # halted for gdb
            assert line, "the first replay ended"
        one_line_error(bbv("replay", str(rec), timeout=60), 1,
                       f"is being replayed by another bbv (pid {first.pid})")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 128 + signal.SIGTERM
    assert not qemu_pids(guest)
    done = bbv("replay", str(rec), timeout=120)
    assert done.returncode == 0 and "matches the recording" in done.stderr, done.stderr


@pytest.mark.parametrize("stage", ["record", "replay"])
def test_a_signal_stops_qemu_and_exits_128_plus_n(bbv_dirs, guest, disk, tmp_path, stage):
    rec = tmp_path / "rec"
    if stage == "replay":
        assert record(guest, disk, rec).returncode == 0
        argv = [*BBV, "replay", str(rec)]
    else:
        argv = [*BBV, "run", "-t", "vexpress", "--image", str(guest), "--rng", "--blk",
                str(disk), "--record", str(rec), "--exec", "hang"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not qemu_pids(guest) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qemu_pids(guest), "QEMU did not start"
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM, proc.stderr.read()
    said = proc.stderr.read().decode()
    assert "Traceback" not in said
    assert said.splitlines()[-1] == "bbv: stopped by SIGTERM"  # after where the recording is
    assert not qemu_pids(guest)
    leftovers = list(Path(bbv_dirs.parent).glob("**/*.qmp"))
    assert not leftovers
    if stage == "record":  # QEMU wrote out its log on SIGTERM: replayable to where it stopped
        assert json.loads((rec / "record.json").read_text())["exit_status"] == 143
        replayed = bbv("replay", str(rec), timeout=120)
        assert replayed.returncode == 0, replayed.stderr
        assert "the replay matches the recording" in replayed.stderr


def test_gdb_on_a_replay_steps_backwards(bbv_dirs, build, tmp_path):  # noqa: F811
    """gdb-multiarch through bbv gdb (barebox's relocated symbols: the guest's ELF is linked
    at 0 and runs at 0x40010000) on bbv replay --gdb: a breakpoint hits, stepi goes on,
    reverse-stepi comes back to the previous instruction, reverse-continue to the breakpoint."""
    image = build / "images" / "guest.img"
    rec = tmp_path / "rec"
    done = bbv("run", "-t", "vexpress", "--image", str(image), "--record", str(rec),
               "--exec", "echo one", "--exec", "echo two", timeout=120)
    assert done.returncode == 0, done.stderr
    port = free_loopback_port()
    replay = subprocess.Popen([*BBV, "replay", str(rec), "--gdb", f"tcp::{port}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        err = Output(replay.stderr)
        err.wait_for("the CPU waits for gdb's 'continue'")
        commands = ["break do_echo", "continue", "p/x $pc", "stepi", "stepi", "p/x $pc",
                    "reverse-stepi", "p/x $pc", "continue", "reverse-continue", "p/x $pc",
                    "kill"]
        gdb = subprocess.run(
            [*BBV, "gdb", "-t", "vexpress", "--image", str(image), f"tcp::{port}", "--",
             "-nx", "-batch", *[arg for c in commands for arg in ("-ex", c)]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        text = gdb.stdout
        assert "Breakpoint 1, do_echo ()" in text, text
        pcs = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)", text, re.M)]
        assert len(pcs) == 4, text
        at_break, stepped, back, again = pcs
        assert stepped != at_break and back != stepped  # two steps on, one back
        assert again == at_break  # reverse-continue: the breakpoint, found backwards
        assert text.count("Breakpoint 1, do_echo ()") >= 3, text
        assert replay.wait(60) == 0, err.text
        assert "replayed under gdb" in err.text
    finally:
        if replay.poll() is None:
            replay.terminate()
            replay.wait(30)
    assert not qemu_pids(image)


@contextlib.contextmanager
def _foreground_recording(guest: Path, rec: Path):
    """`bbv run --record` in the foreground on a real terminal (a pty), stopped at the prompt;
    the terminal's text so far in child.logfile_read."""
    import pexpect

    child = pexpect.spawn(BBV[0], [*BBV[1:], "run", "-t", "vexpress", "--image", str(guest),
                                   "--record", str(rec)], timeout=60, encoding="utf-8",
                          codec_errors="replace")
    child.logfile_read = io.StringIO()
    try:
        child.expect("stop autoboot")
        child.send(" ")
        child.expect("bbv-tiny:/")
        yield child
    finally:
        if child.isalive():
            child.kill(signal.SIGTERM)
            child.wait()


def test_an_interactive_recording_typed_by_hand_replays(bbv_dirs, guest, tmp_path):
    """Typed as a person types (80-200 ms a key, uneven), ended with reset as the docs say
    (-no-reboot: barebox's reset ends the recording where it has no poweroff)."""
    import random

    import pexpect

    rec = tmp_path / "rec"
    with _foreground_recording(guest, rec) as child:
        assert "poweroff or reset ends the recording" in child.logfile_read.getvalue()
        for line in ("echo typed by hand $?", "reset"):
            for char in line + "\r":
                time.sleep(random.uniform(0.08, 0.2))
                child.send(char)
            if line != "reset":
                child.expect("typed by hand 0")
        child.expect(pexpect.EOF, timeout=60)
        child.close()
    assert child.exitstatus == 0, child.before
    assert json.loads((rec / "record.json").read_text())["exit_status"] == 0
    serial = (rec / "serial.log").read_bytes()
    assert b"typed by hand 0" in serial and serial.rstrip().endswith(b"reset")
    replayed = bbv("replay", str(rec), timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    assert f"matches the recording: {len(serial)} bytes" in replayed.stderr
    assert not qemu_pids(guest)


def test_a_terminal_that_hangs_up_ends_the_recording_with_129(bbv_dirs, guest, tmp_path):
    rec = tmp_path / "rec"
    with _foreground_recording(guest, rec) as child:
        os.close(child.child_fd)  # the terminal window closed: SIGHUP, and a terminal gone
        child.closed = True
        deadline = time.monotonic() + 40
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (child.exitstatus, child.signalstatus) == (128 + signal.SIGHUP, None)
    assert json.loads((rec / "record.json").read_text())["exit_status"] == 128 + signal.SIGHUP
    assert not qemu_pids(guest)
    replayed = bbv("replay", str(rec), timeout=120)  # up to where the terminal went
    assert replayed.returncode == 0, replayed.stderr


def test_a_signal_at_the_prompt_is_named_after_where_the_recording_is(bbv_dirs, guest,
                                                                      tmp_path):
    import pexpect

    rec = tmp_path / "rec"
    with _foreground_recording(guest, rec) as child:
        child.kill(signal.SIGTERM)
        child.expect(pexpect.EOF, timeout=40)
        child.close()
    assert (child.exitstatus, child.signalstatus) == (128 + signal.SIGTERM, None)
    lines = child.logfile_read.getvalue().splitlines()
    assert lines[-2:] == [f"bbv: recording in {rec}; replay it with: bbv replay {rec}",
                          "bbv: stopped by SIGTERM"]


@contextlib.contextmanager
def _immutable(path: Path):
    """No file can be made in path, not even by root (chattr +i); skips where not allowed."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here (needs CAP_LINUX_IMMUTABLE)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_directories_where_nothing_can_be_written_are_one_line(bbv_dirs, guest, disk, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with _immutable(empty):
        one_line_error(record(guest, disk, empty), 2, f"--record {empty}: cannot make it")
        one_line_error(record(guest, disk, empty / "rec"), 2, "cannot make it")
    assert list(empty.iterdir()) == []
    rec = tmp_path / "rec"
    assert record(guest, disk, rec).returncode == 0
    before = snapshot(rec)
    with _immutable(rec):
        one_line_error(bbv("replay", str(rec), timeout=120), 2,
                       "cannot write replayed/ in it", "copy the recording")
    assert snapshot(rec) == before and not qemu_pids(guest)
    (rec / "replayed").mkdir()
    with _immutable(rec / "replayed"):
        one_line_error(bbv("replay", str(rec), timeout=120), 2, "cannot write replayed/ in it")
    assert bbv("replay", str(rec), timeout=120).returncode == 0


def test_a_sparse_disk_is_recorded_sparse_and_replays(bbv_dirs, guest, tmp_path):
    disk = tmp_path / "big.img"
    with open(disk, "wb") as fh:
        fh.write(bytes(range(256)) * 4096)
        fh.truncate(4 << 30)  # 4 GiB, 1 MiB of it data
    rec = tmp_path / "rec"
    done = record(guest, disk, rec)
    assert done.returncode == 0, done.stderr
    copy = rec / "disks" / "blk0.img"
    assert copy.stat().st_size == 4 << 30 and copy.stat().st_blocks * 512 <= 2 << 20
    with open(copy, "rb") as fh:
        assert fh.read(1 << 20) == bytes(range(256)) * 4096
    replayed = bbv("replay", str(rec), timeout=120)
    assert replayed.returncode == 0 and "matches the recording" in replayed.stderr


@contextlib.contextmanager
def _stalling(image: Path, stopped: float, running: float):
    """The host at its busiest, for QEMU booting image: stopped for `stopped` seconds in every
    `stopped + running` (SIGSTOP, SIGCONT), as long as the block runs; never left stopped."""
    done = threading.Event()

    def stall() -> None:
        while not done.is_set():
            pids = qemu_pids(image)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            done.wait(stopped)
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            done.wait(running)

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def test_keys_typed_while_qemu_stalls_reach_the_guest_in_order(bbv_dirs, guest, disk,
                                                               tmp_path):
    """Under record QEMU hands typed keys to the UART in batches, without asking it for room:
    a batch of more than 16 (the PL011's FIFO) overwrote the first key ("Unknown command 'cho
    recorded 0'" on a busy host). With QEMU stopped 1 s in every 1.2 s, 20 keys typed 50 ms
    apart would pile up: bbv types no further ahead of the echo than the FIFO holds."""
    rec, words = tmp_path / "rec", "typed while QEMU stalled, in order"
    with _stalling(guest, stopped=1.0, running=0.2):
        done = bbv("run", "-t", "vexpress", "--image", str(guest), "--rng", "--blk", str(disk),
                   "--record", str(rec), "--exec", f"echo {words} $?", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{words} 0" in done.stdout
    replayed = bbv("replay", str(rec), timeout=120)
    assert replayed.returncode == 0 and "matches the recording" in replayed.stderr
    assert not qemu_pids(guest)


@pytest.mark.parametrize("existing", [False, True])
def test_a_signal_while_the_disk_is_copied_leaves_no_recording(bbv_dirs, guest, tmp_path,
                                                               existing):
    disk = tmp_path / "full.img"
    with open(disk, "wb") as fh:
        for _ in range(1024):  # 1 GiB of data: the copy takes a while
            fh.write(b"\xa5" * (1 << 20))
    rec = tmp_path / "rec"
    if existing:
        rec.mkdir()
    proc = subprocess.Popen([*BBV, "run", "-t", "vexpress", "--image", str(guest), "--blk",
                             str(disk), "--record", str(rec), "--exec", "ls"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    copy = rec / "disks" / "blk0.img"
    deadline = time.monotonic() + 60
    while not copy.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert copy.exists() and proc.poll() is None, "the copy did not start"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert "Traceback" not in proc.stderr.read()
    assert (list(rec.iterdir()) == []) if existing else not rec.exists()
    assert not qemu_pids(guest)


def test_a_qemu_arg_clashing_with_icount_is_refused(bbv_dirs, guest, disk, tmp_path):
    rec = tmp_path / "rec"
    clash = ("--qemu-arg", "-icount", "--qemu-arg", "shift=3")
    one_line_error(record(guest, disk, rec, *clash), 2,
                   "--qemu-arg -icount: --record or bbv replay sets -icount itself")
    assert not rec.exists()
    result = bbv("run", "-t", "vexpress", "--image", str(guest), "--deterministic", *clash,
                 "--exec", "ls", timeout=60)
    one_line_error(result, 2, "--qemu-arg -icount: --deterministic sets -icount itself")
    assert not qemu_pids(guest)
    for mode in ("--exec", "--attach"):  # an -rtc value QEMU does not replay, in any mode
        given = ["--exec", "ls"] if mode == "--exec" else ["--attach"]
        one_line_error(bbv("run", "-t", "vexpress", "--image", str(guest), "--record", str(rec),
                           "--qemu-arg=-rtc", "--qemu-arg=base=localtime", *given), 2,
                       "--qemu-arg -rtc base=localtime: base=localtime cannot be recorded")
        assert not rec.exists() and not qemu_pids(guest)


@pytest.mark.parametrize("existing", [False, True])
def test_qemu_refusing_to_record_leaves_no_recording(bbv_dirs, guest, disk, tmp_path, existing):
    rec = tmp_path / "rec"
    if existing:
        rec.mkdir()
    result = record(guest, disk, rec, "--qemu-arg", "-nonsense")
    assert result.returncode == 1 and "-nonsense: invalid option" in result.stderr
    assert "bbv replay" not in result.stderr
    assert (list(rec.iterdir()) == []) if existing else not rec.exists()


def test_disk_copies_that_would_not_fit_are_refused_and_nothing_is_left(bbv_dirs, guest,
                                                                        tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        disk = tmp_path / "data.img"
        disk.write_bytes(b"\x5a" * (8 << 20))
        one_line_error(bbv("run", "-t", "vexpress", "--image", str(guest), "--blk", str(disk),
                           "--record", str(small / "rec"), "--exec", "ls", timeout=60), 1,
                       "the disk copies need 8.0 MiB", "record into a directory with more room")
        assert list(small.iterdir()) == [] and not qemu_pids(guest)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _runtime_files() -> list[Path]:
    import os

    run = Path(os.environ["BBV_RUNTIME_DIR"])
    return sorted(run.iterdir()) if run.exists() else []


def _attached_recording(guest: Path, rec: Path, *extra: str):
    """bbv run --attach --record on a pty, something typed on the virtio console (paced by
    bbv's console server; the tiny guest reads only its serial port)."""
    from console_helpers import Terminal

    term = Terminal(["run", "-t", "vexpress", "--image", str(guest), "--rng", "--attach",
                     "--record", str(rec), *extra])
    head = term.read_until(b"twice sends it\r\n").decode()
    term.type(b"typed on the console\r")
    time.sleep(1.5)
    return term, int(re.search(r"in the background, pid (\d+)", head)[1])


@pytest.mark.parametrize("way, status", [("escape", 0), ("SIGTERM", 143), ("SIGINT", 130),
                                         ("SIGHUP", 129)])
def test_an_attached_recording_ends_cleanly_and_replays(bbv_dirs, guest, tmp_path, way, status):
    """Left (Ctrl-]: QEMU quits over QMP) or stopped by a signal: 128+N, no QEMU, socket or
    FIFO left, and the recording replays both transcripts byte for byte."""
    import os

    rec = tmp_path / "rec"
    term, pid = _attached_recording(guest, rec)
    try:
        if way == "escape":
            term.type(b"\x1d")
        else:
            os.kill(term.proc.pid, getattr(signal, way))
        assert term.wait() == status
        while select.select([term.master], [], [], 0.2)[0]:
            term.seen += os.read(term.master, 65536)
    finally:
        term.close()
    last = term.seen.decode(errors="replace").splitlines()[-1]
    assert last == (f"bbv: stopped by {way}" if status else
                    f"bbv: recording in {rec}; replay it with: bbv replay {rec}")
    assert not qemu_pids(guest) and _runtime_files() == []
    assert not list(Path("/tmp").glob(f"bbv-vc-{term.proc.pid}-*"))
    assert json.loads((rec / "record.json").read_text())["exit_status"] == status
    serial = (rec / "serial.log").read_bytes()
    assert b"stop autoboot" in serial and (rec / "console.log").exists()
    assert "virtconsole" in (rec / "command.sh").read_text()
    for _ in range(2):
        replayed = bbv("replay", str(rec), timeout=120)
        assert replayed.returncode == 0, replayed.stderr
        assert f"matches the recording: {len(serial)} bytes of serial output" in replayed.stderr
        assert "bytes of virtio console output, byte for byte" in replayed.stderr
    assert not Path(f"/proc/{pid}").exists()  # the QEMU bbv named on the way up has ended


def test_an_attached_recording_without_its_console_transcript_is_refused(bbv_dirs, guest,
                                                                          tmp_path):
    """Not a replay that says it matches, having compared the serial line alone."""
    rec = tmp_path / "rec"
    term, _pid = _attached_recording(guest, rec)
    try:
        term.type(b"\x1d")
        assert term.wait() == 0
    finally:
        term.close()
    (rec / "console.log").unlink()
    one_line_error(bbv("replay", str(rec), timeout=120), 2,
                   f"{rec} is an incomplete recording: console.log is missing")
    assert not qemu_pids(guest)


def test_a_recording_kept_running_is_replayed_once_qemu_has_ended(bbv_dirs, guest, tmp_path):
    import os

    rec = tmp_path / "rec"
    term, pid = _attached_recording(guest, rec, "--keep-running")
    try:
        term.type(b"\x1d")
        assert term.wait() == 0
        assert f"QEMU (pid {pid}) records into {rec} until it exits" in term.seen.decode()
        still = bbv("replay", str(rec))
        one_line_error(still, 2, f"{rec} is still being recorded by QEMU (pid {pid}")
        os.kill(pid, signal.SIGTERM)  # QEMU writes out its log and exits
        deadline = time.monotonic() + 30
        while qemu_pids(guest) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        term.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not qemu_pids(guest)
    replayed = bbv("replay", str(rec), timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    assert "bytes of virtio console output, byte for byte" in replayed.stderr


@need("qemu-system-mips")
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_kept_recording_where_bbv_reads_the_serial_line_is_refused(bbv_dirs, tmp_path,
                                                                     dry_run):
    """malta (no fw_cfg): bbv types the console's activation on the serial line, which nobody
    reads once bbv has left; nothing is made, no QEMU starts."""
    image = tmp_path / "zeros.img"
    image.write_bytes(bytes(4096))
    rec = tmp_path / "rec"
    result = bbv("run", "-t", "malta", "--image", str(image), "--keep-running", "--record",
                 str(rec), *(["--dry-run"] if dry_run else []), timeout=60)
    one_line_error(result, 2, "--keep-running --record: on 'malta' bbv reads the serial line")
    assert not rec.exists() and not qemu_pids(image)


def test_a_kept_recording_in_a_directory_with_a_comma_is_known_to_be_recording(tmp_path):
    """QEMU's argv names the log with its commas doubled (a QemuOpts value): still_recording
    finds it there, so bbv replay refuses while that QEMU records."""
    import sys

    from barebox_virtio_cli.qemu.args import RECORD, Icount
    from barebox_virtio_cli.run.recording import LOG, RECORD_FILE, still_recording

    rec = tmp_path / "rec,1"
    rec.mkdir()
    icount = Icount(mode=RECORD, rrfile=rec / LOG).value()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", icount])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while b"time.sleep" not in cmdline.read_bytes():  # exec'd
        time.sleep(0.01)
    try:
        (rec / RECORD_FILE).write_text(json.dumps({"recording_pid": proc.pid}))
        assert still_recording(rec) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert still_recording(rec) is None
