"""`bbv run --gdb` and `bbv gdb` against real QEMU and gdb-multiarch, with the tiny guest
(tests/tinyguest) assembled with symbols and debug line info. Like barebox, the symbols are
linked at one address (0) and the code runs at another (0x40010000, where QEMU loads a raw
-kernel image), so bbv must find the offset from the running code, literal pools and all."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import BBV, TESTS, bbv, need
from process_helpers import CROSS, pids_with_arg

from barebox_virtio_cli.debug.endpoint import free_loopback_port

SOURCE = TESTS / "tinyguest" / "tinyguest.s"
LOAD = 0x40010000
pytestmark = [pytest.mark.qemu, need("qemu-system-arm", "gdb-multiarch", f"{CROSS}as",
                                     f"{CROSS}ld", f"{CROSS}objcopy")]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A build directory laid out like barebox's: BUILD/barebox (ELF with symbols, linked
    at 0) and BUILD/images/guest.img (the same code linked where it runs)."""
    out = tmp_path_factory.mktemp("gdbguest")
    (out / "images").mkdir()
    obj = out / "guest.o"
    subprocess.run([f"{CROSS}as", "-g", "-o", obj, SOURCE], check=True)
    subprocess.run([f"{CROSS}ld", "-Ttext=0", "-o", out / "barebox", obj], check=True)
    subprocess.run([f"{CROSS}ld", f"-Ttext={LOAD:#x}", "-o", out / "run.elf", obj], check=True)
    subprocess.run([f"{CROSS}objcopy", "-O", "binary", out / "run.elf",
                    out / "images" / "guest.img"], check=True)
    # As in barebox, the image's Kbuild command file names the PBL it starts with.
    (out / "images" / ".guest.img.cmd").write_text(
        "savedcmd_images/guest.img := cat images/start_guest.pblb > images/guest.img\n")
    (out / "images" / "start_guest.pbl").write_bytes((out / "barebox").read_bytes())
    return out


class Output:
    """A child's output, collected in a thread as it comes, so tests can wait for a text."""

    def __init__(self, stream):
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            self.chunks.append(chunk.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def wait_for(self, text: str, seconds: float = 30) -> str:
        """The line holding `text` (a line so far: output need not end in a newline)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.text.splitlines():
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in:\n{self.text}")


def boot(build: Path, *args: str) -> tuple[subprocess.Popen, Output, Output]:
    proc = subprocess.Popen([*BBV, "run", "-t", "vexpress", "--image",
                             str(build / "images" / "guest.img"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, Output(proc.stdout), Output(proc.stderr)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_breakpoint_hits_with_source_lines_at_the_relocated_address(build):
    port = free_loopback_port()
    run, out, err = boot(build, "--gdb", f"tcp::{port}")
    try:
        attach = err.wait_for("attach: bbv gdb")
        assert f"--image {build}/images/guest.img tcp:127.0.0.1:{port}" in attach
        out.wait_for("autoboot")
        run.stdin.write(b"\n")  # stop "autoboot": the guest now waits for a line
        run.stdin.flush()
        out.wait_for("bbv-tiny")
        gdb = subprocess.Popen(
            [*BBV, "gdb", "-t", "vexpress", "--image", str(build / "images" / "guest.img"),
             f"tcp::{port}", "--", "-nx", "-batch", "-ex", "break do_echo", "-ex", "continue",
             "-ex", "info symbol $pc", "-ex", "bt 1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        gdb_out = Output(gdb.stdout)
        gdb_out.wait_for("Breakpoint 1 at")
        run.stdin.write(b"echo hello\n")
        run.stdin.flush()
        assert gdb.wait(60) == 0
        text = gdb_out.text
        assert f"runs at offset {LOAD:#x}" in text, text
        assert f"Breakpoint 1, do_echo () at {SOURCE}" in text, text
        assert "do_echo in section .text" in text, text
        out.wait_for("hello")  # gdb detached, the guest carried on
    finally:
        stop(run)
    assert not pids_with_arg(build / "images" / "guest.img")


def gdb_batch(build: Path, port: int, *commands: str) -> tuple[subprocess.Popen, Output]:
    argv = [*BBV, "gdb", "-t", "vexpress", "--image", str(build / "images" / "guest.img"),
            f"tcp::{port}", "--", "-nx", "-batch"]
    for command in commands:
        argv += ["-ex", command]
    gdb = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return gdb, Output(gdb.stdout)


def test_gdb_wait_loads_the_pbl_where_the_image_was_loaded(build):
    """Halted before the first instruction, the PC is in QEMU's boot code: the PBL is found
    from the image's first bytes in memory, so a breakpoint set now hits once it runs."""
    port = free_loopback_port()
    run, out, err = boot(build, "--gdb", f"tcp::{port}", "--gdb-wait")
    try:
        err.wait_for("the CPU waits for gdb's 'continue'")
        gdb, gdb_out = gdb_batch(build, port, "break do_echo", "continue", "bt 1")
        gdb_out.wait_for("Breakpoint 1 at")
        assert "barebox (" not in gdb_out.text  # the guest's "barebox" ELF has not run yet
        assert f"PBL runs at offset {LOAD:#x} (the image is loaded at {LOAD:#x}" in gdb_out.text
        out.wait_for("autoboot")  # gdb's continue started the CPU
        run.stdin.write(b"\necho again\n")
        run.stdin.flush()
        assert gdb.wait(60) == 0
        assert f"Breakpoint 1, do_echo () at {SOURCE}" in gdb_out.text, gdb_out.text
        out.wait_for("again")
    finally:
        stop(run)
    assert not pids_with_arg(build / "images" / "guest.img")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_stop_gdb_and_bbv_exits_128_plus_n(build, sig):
    port = free_loopback_port()
    run, out, err = boot(build, "--gdb", f"tcp::{port}")
    try:
        out.wait_for("autoboot")
        gdb = subprocess.Popen(
            [*BBV, "gdb", "-t", "vexpress", "--image", str(build / "images" / "guest.img"),
             f"tcp::{port}", "--", "-nx"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        gdb_out = Output(gdb.stdout)
        gdb_out.wait_for("symbols loaded")
        remote = f"target remote 127.0.0.1:{port}"
        assert pids_with_arg(remote), "gdb is not running"
        gdb.send_signal(sig)
        assert gdb.wait(30) == 128 + sig
        gdb_out.wait_for(f"bbv: stopped by {signal.Signals(sig).name}")
        assert not pids_with_arg(remote), "gdb left running"
        run.stdin.write(b"\necho alive\n")  # gdb detached: the halted guest runs on
        run.stdin.flush()
        out.wait_for("alive")
    finally:
        stop(run)


def test_a_busy_port_is_one_line_and_exit_2(build):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = bbv("run", "-t", "vexpress", "--image",
                     str(build / "images" / "guest.img"), "--gdb", f"tcp::{port}", timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"bbv: error: --gdb tcp:127.0.0.1:{port}: port {port} is in use; "
                             "choose another, or give a bare --gdb for a free one\n")


def test_no_symbols_beside_the_image_says_which_build_makes_them(tmp_path, build):
    image = tmp_path / "images" / "guest.img"
    image.parent.mkdir()
    image.write_bytes((build / "images" / "guest.img").read_bytes())
    result = bbv("gdb", "-t", "vexpress", "--image", str(image), "tcp::1", timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"bbv: error: no barebox ELF beside {image} (in {tmp_path})")
    assert "'bbv build vexpress'" in result.stderr


def test_missing_gdb_names_the_debian_package(tmp_path, build):
    result = bbv("gdb", "-t", "vexpress", "--image", str(build / "images" / "guest.img"),
                 "tcp::1", timeout=60, path=str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "apt install gdb-multiarch" in result.stderr


def test_no_endpoint_and_no_running_stub(build):
    result = bbv("gdb", "-t", "vexpress", "--image",
                 str(build / "images" / "guest.img"), timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("bbv: error: no ENDPOINT given and no 'bbv run --gdb' of target "
                             "'vexpress' is running; start one, or pass the endpoint it "
                             "printed\n")


def test_iomem_gives_the_offset(build, tmp_path):
    iomem = tmp_path / "iomem.txt"
    iomem.write_text("    0x40010000 - 0x4001ffff (size    64 KiB) barebox code\n")
    port = free_loopback_port()
    run, out, err = boot(build, "--gdb", f"tcp::{port}", "--gdb-wait")
    try:
        err.wait_for("attach: bbv gdb")
        result = subprocess.run(
            [*BBV, "gdb", "-t", "vexpress", "--image", str(build / "images" / "guest.img"),
             "--iomem", str(iomem), f"tcp::{port}", "--", "-nx", "-batch",
             "-ex", f"info symbol {LOAD + 4:#x}"], capture_output=True, text=True, timeout=60)
    finally:
        stop(run)
    assert result.returncode == 0, result.stderr
    assert f"barebox runs at offset {LOAD:#x} (from iomem)" in result.stdout
    assert "_start + 4 in section .text" in result.stdout


def test_iomem_without_barebox_code_is_exit_2(build, tmp_path):
    iomem = tmp_path / "iomem.txt"
    iomem.write_text("0x40000000 - 0x4fffffff (size 256 MiB) ram0\n")
    result = bbv("gdb", "-t", "vexpress", "--image",
                 str(build / "images" / "guest.img"), "--iomem", str(iomem),
                 "tcp::1", timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"bbv: error: --iomem {iomem}: no 'barebox code' line; give the "
                             "output of barebox's iomem command\n")


def test_plain_bbv_gdb_finds_the_running_stub_and_its_image(build):
    run, out, err = boot(build, "--gdb")  # a free loopback port
    try:
        attach = err.wait_for("attach: bbv gdb")
        out.wait_for("autoboot")
        result = bbv("gdb", "-t", "vexpress", "--", "-nx", "-batch", timeout=60)
    finally:
        stop(run)
    endpoint = attach.rsplit(" ", 1)[1]
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"bbv: gdb on {endpoint}; symbols: {build}/barebox and ")
    assert f"runs at offset {LOAD:#x}" in result.stdout
    assert not (Path(os.environ.get("BBV_RUNTIME_DIR", "/nonexistent")) /
                "vexpress.gdb.json").exists(), "the stub's record outlived the run"


def test_unix_socket_stub(build):
    sock = Path(os.environ["BBV_RUNTIME_DIR"]) / "g,db.sock"  # a comma QEMU must not split at
    sock.parent.mkdir(parents=True, exist_ok=True)
    run, out, err = boot(build, "--gdb", f"unix:{sock}")
    try:
        attach = err.wait_for("attach: bbv gdb")
        assert shlex.split(attach.split("attach: ", 1)[1]) == [
            "bbv", "gdb", "--target", "vexpress", "--image", str(build / "images" / "guest.img"),
            f"unix:{sock}"]
        out.wait_for("autoboot")
        result = bbv("gdb", "-t", "vexpress", f"unix:{sock}", "--", "-nx",
                     "-batch", "-ex", "info symbol $pc", timeout=60)
    finally:
        stop(run)
    assert result.returncode == 0, result.stderr
    assert f"runs at offset {LOAD:#x}" in result.stdout
    assert "getc" in result.stdout  # where the guest idles, waiting for a key
    assert not sock.exists()


def test_terminal_is_restored_after_sigterm(build):
    """gdb on a terminal (readline changes its modes): SIGTERM to bbv leaves the terminal as
    it was before bbv started."""
    import termios

    port = free_loopback_port()
    run, out, err = boot(build, "--gdb", f"tcp::{port}")
    master, slave = os.openpty()
    try:
        out.wait_for("autoboot")
        before = termios.tcgetattr(slave)
        gdb = subprocess.Popen([*BBV, "gdb", "-t", "vexpress", f"tcp::{port}", "--", "-nx"],
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        seen = b""
        deadline = time.monotonic() + 30
        while b"(gdb) " not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        assert b"(gdb) " in seen, seen
        assert termios.tcgetattr(slave) != before, "gdb did not change the terminal modes"
        gdb.send_signal(signal.SIGTERM)
        assert gdb.wait(30) == 128 + signal.SIGTERM
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
        stop(run)


def test_nothing_listening_is_one_line_and_exit_1_without_starting_gdb(build, tmp_path):
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as unbound:
        unbound.bind(str(stale))  # a socket file nobody accepts on
    port = free_loopback_port()
    for given, problem in ((f"tcp::{port}", f"nothing listens on tcp:127.0.0.1:{port}"),
                           (str(port), f"nothing listens on tcp:127.0.0.1:{port}"),
                           (f"unix:{tmp_path}/none.sock", f"no socket {tmp_path}/none.sock"),
                           (f"unix:{stale}", f"nothing listens on unix:{stale}")):
        result = bbv("gdb", "-t", "vexpress", "--image",
                     str(build / "images" / "guest.img"), given, "--", "-batch", timeout=60)
        assert result.returncode == 1, given
        assert result.stderr == (f"bbv: error: {problem}; start 'bbv run --gdb' first (or give "
                                 "the endpoint it printed)\n")
        assert result.stdout == ""  # gdb did not run


def test_image_that_is_a_directory_says_so(build, tmp_path):
    result = bbv("gdb", "-t", "vexpress", "--image", str(tmp_path), "tcp::1", timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"bbv: error: --image {tmp_path}: is a directory, not a file\n"


@pytest.mark.parametrize("option, what", [("--image", "file"), ("--build-dir", "directory")])
def test_a_missing_path_is_reported_before_the_missing_endpoint(tmp_path, option, what):
    """No ENDPOINT and no running stub either: the path typed wrong is the one line."""
    missing = tmp_path / "nonexistent"
    result = bbv("gdb", "-t", "vexpress", option, str(missing), timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"bbv: error: {option} {missing}: no such {what}\n"
