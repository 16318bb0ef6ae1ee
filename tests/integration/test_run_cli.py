"""`bbv run` as a user meets it: the real console script, real QEMU, real signals."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BBV, bbv
from process_helpers import alive, catches, children, is_qemu

pytestmark = pytest.mark.qemu
needs_arm = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                               reason="qemu-system-arm not installed")


def one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bbv: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def tree(tmp_path):
    """A directory with images/ as barebox's build leaves it, and two disks."""
    (tmp_path / "images").mkdir()
    for name in ("barebox-dt-2nd.img", "barebox-qemu-malta.img"):
        (tmp_path / "images" / name).write_bytes(bytes(64 * 1024))
    for disk in ("a.img", "b.img"):
        (tmp_path / disk).write_bytes(bytes(1 << 20))
    return tmp_path


def wait_for_child(proc: subprocess.Popen, timeout: float = 20, poll: float = 0.05) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        if kids:
            return kids[0]
        time.sleep(poll)
    raise AssertionError("bbv started no QEMU")


def warm_probe_cache(tree: Path) -> None:
    """A dry run caches bbv's QEMU probe, so that the next bbv's first child is the boot QEMU
    (not the short-lived probe QEMU, whose death would prove nothing)."""
    assert bbv("run", "--blk", "a.img", "-n", cwd=tree).returncode == 0


def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def image_locked(path: Path) -> bool:
    """Whether another open file holds one of QEMU's byte-range locks (offsets 100-299)."""
    flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 100, 200, 0)
    with open(path, "rb") as fh:
        answer = fcntl.fcntl(fh, fcntl.F_OFD_GETLK, flock)
    return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK


@needs_arm
def test_dry_run_finds_the_image_under_images_and_quotes_paths(tree):
    (tree / "my disk.img").write_bytes(bytes(4096))
    result = bbv("run", "--arch", "arm", "--blk", "my disk.img", "--dry-run", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert f"-kernel {tree}/images/barebox-dt-2nd.img" in result.stdout
    assert f"'if=none,id=hd0,format=raw,file={tree}/my disk.img'" in result.stdout


def test_version_and_help_list_every_command():
    from barebox_virtio_cli import __version__
    from barebox_virtio_cli.cli import COMMANDS

    assert bbv("--version").stdout.strip() == f"bbv, version {__version__}"
    help_text = bbv("--help").stdout
    for name, (_, _, summary) in COMMANDS.items():
        assert f"{name}  " in help_text and summary[:30] in help_text


@needs_arm
@pytest.mark.parametrize("args,code,needles", [
    (["--blk", "missing.img"], 2, ["--blk missing.img: no such file"]),
    (["--blk", "."], 2, ["is a directory"]),
    (["--target", "vexpres"], 2, ["unknown target 'vexpres'", "did you mean 'vexpress'"]),
    (["--arch", "mipz"], 2, ["unknown arch 'mipz'", "'mips'"]),
    (["--arch", "mips", "--env", "nv/x=1"], 2, ["has no fw_cfg device"]),
    (["--console", "/tmp/" + "x" * 110], 2, ["more than the 107"]),
    (["--env", "novalue"], 2, ["is not PATH=VALUE"]),
    (["--port-forward", "80"], 2, ["--port-forward needs --net"]),
    (["--fs", "=."], 2, ["--fs =.: the TAG before '=' is empty"]),
    (["--fs", "a,b=."], 2, ["--fs a,b=.: TAG 'a,b' may hold only"]),
    (["--attach", "--exec", "version"], 2, ["error: --attach is interactive;"]),
    (["--keep-running", "--exec", "version"], 2,
     ["error: --keep-running (which implies --attach) is interactive;"]),
    (["--frobnicate"], 2, ["No such option '--frobnicate'"]),
    (["--target", "riscv32"], 1, ["lacks its default firmware", "--firmware FILE"]),
])
def test_bad_input_gets_one_clear_line(tree, args, code, needles):
    if "riscv32" in args:
        if shutil.which("qemu-system-riscv32") is None:
            pytest.skip("qemu-system-riscv32 not installed")
        from barebox_virtio_cli.qemu.probe import probe

        if probe(shutil.which("qemu-system-riscv32")).data_file(
                "opensbi-riscv32-generic-fw_dynamic.bin"):
            pytest.skip("this QEMU has riscv32 OpenSBI")
    one_line_error(bbv("run", *args, "--dry-run", cwd=tree), code, *needles)


def test_missing_image_says_where_it_looked_and_how_to_build(tmp_path):
    line = one_line_error(bbv("run", "--target", "malta", "-n", cwd=tmp_path), 1,
                          "no barebox-qemu-malta.img for target 'malta'", "bbv build malta")
    assert str(tmp_path / "images" / "barebox-qemu-malta.img") in line


def test_missing_qemu_names_the_debian_package(tree):
    # nothing but the tree on PATH: no QEMU
    one_line_error(bbv("run", "--arch", "mips", "-n", cwd=tree, path=str(tree)), 1,
                   "qemu-system-mips is not installed", "apt install qemu-system-mips")


@needs_arm
def test_console_path_that_is_a_file_is_never_replaced(tree):
    victim = tree / "notes.txt"
    victim.write_text("precious")
    one_line_error(bbv("run", "--console", str(victim), "-n", cwd=tree), 2, "is not a socket")
    assert victim.read_text() == "precious"


@needs_arm
@pytest.mark.parametrize("mode", [["--exec", "version"], ["--attach", "--keep-running"]])
@pytest.mark.parametrize("where, says", [
    ("/proc/bbv.sock", "cannot make a unix socket there"),
    ("/tmp/" + "a" * 110 + ".sock", "more than the 107 a unix socket allows"),
    ("/tmp", "is a directory; give the path of the socket to make"),
])
def test_console_paths_no_socket_can_take_are_usage_errors(tree, mode, where, says):
    """Checked before QEMU starts, in every mode that serves the console."""
    tmp = tree / "tmp"  # bbv's FIFO dirs apart from other processes'
    tmp.mkdir()
    result = bbv("run", "--console", where, *mode, cwd=tree, stdin=subprocess.DEVNULL,
                 env={"TMPDIR": str(tmp)})
    one_line_error(result, 2, f"--console {where}", says)
    assert list(tmp.iterdir()) == []  # no FIFO dir left


@needs_arm
def test_console_socket_served_by_a_live_process_is_refused(tree):
    path = Path(f"/tmp/bbv-live{os.getpid()}.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        try:
            one_line_error(bbv("run", "--console", str(path), "-n", cwd=tree), 2,
                           "already served by a running bbv or QEMU")
        finally:
            path.unlink()


@needs_arm
def test_stale_console_socket_is_accepted(tree):
    path = Path(f"/tmp/bbv-stale{os.getpid()}.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # bound, never listening: like one a dead QEMU left behind
    try:
        result = bbv("run", "--console", str(path), "-n", cwd=tree)
        assert result.returncode == 0 and f"path={path}," in result.stdout
    finally:
        path.unlink()


@needs_arm
def test_image_in_use_by_another_qemu(tree):
    holder = subprocess.Popen(
        ["qemu-system-arm", "-M", "virt", "-S", "-display", "none", "-serial", "null",
         "-monitor", "none", "-drive", f"if=none,id=d,format=raw,file={tree / 'a.img'}",
         "-device", "virtio-blk-device,drive=d"], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: image_locked(tree / "a.img") or holder.poll() is not None,
                   "QEMU to lock a.img")
        assert holder.poll() is None, holder.stderr.read()
        one_line_error(bbv("run", "--blk", "a.img", "-n", cwd=tree), 2,
                       "in use by another QEMU", "both with --snapshot", "copy")
        # QEMU refuses a -snapshot boot of an image another QEMU writes (its shared write
        # lock), so bbv does too, saying what works instead.
        one_line_error(bbv("run", "--blk", "a.img", "--snapshot", "-n", cwd=tree), 2,
                       "another QEMU writes to it", "stop that QEMU")
    finally:
        holder.kill()
        holder.wait()


@needs_arm
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_busy_port_forward_host_port_is_refused_before_qemu(tree, proto):
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if proto == "tcp":
            busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(bbv("run", "--net", "--port-forward", f"{proto}:{port}:69",
                                  cwd=tree), 2)
    assert line == (f"bbv: error: --port-forward {proto}:{port}:69: {proto} port {port} on "
                    "127.0.0.1 is in use; choose another host port (HOST:GUEST, e.g. 2222:22)")


@needs_arm
def test_qemu_errors_pass_through_with_its_exit_status(tree):
    result = bbv("run", "--qemu-arg=-no-such-option", cwd=tree)
    assert result.returncode == 1
    assert "qemu-system-arm: -no-such-option: invalid option" in result.stderr


@needs_arm
def test_qemu_error_gets_a_hint(tree):
    result = bbv("run", "--qemu-arg=-drive", "--qemu-arg=file=/nonexistent/x.img,format=raw",
                 cwd=tree)
    assert result.returncode == 1
    assert "Could not open '/nonexistent/x.img'" in result.stderr
    assert "bbv: hint: check that the file exists" in result.stderr


@needs_arm
def test_quit_key_on_the_serial_console_ends_with_status_zero(tree):
    warm_probe_cache(tree)
    proc = subprocess.Popen(BBV + ["run", "--blk", "a.img"], cwd=tree, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        qemu = wait_for_child(proc)
        time.sleep(0.5)
        out, err = proc.communicate(b"\x01x", timeout=20)
    finally:
        proc.kill()  # QEMU follows (parent-death signal) if the test failed half-way
    assert proc.returncode == 0, err
    assert b"Ctrl-A X quits QEMU" in err
    assert not alive(qemu)


@needs_arm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_to_bbv_never_leave_qemu_running(tree, sig):
    warm_probe_cache(tree)
    proc = subprocess.Popen(BBV + ["run", "--blk", "a.img", "--console"], cwd=tree,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        qemu = wait_for_child(proc)
        # Both have their handlers: QEMU ends cleanly on SIGTERM, bbv forwards all three.
        wait_until(lambda: is_qemu(qemu) and catches(qemu, signal.SIGTERM)
                   and catches(proc.pid, signal.SIGINT, signal.SIGTERM, signal.SIGHUP),
                   "QEMU and bbv to handle signals")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert not alive(qemu)
    # QEMU ends on the forwarded SIGTERM; bbv reports the signal that stopped it (128+N) and
    # removes the console socket and FIFOs it served.
    assert proc.returncode == 128 + sig, err
    assert b"terminating on signal 15" in err
    assert err.endswith(f"bbv: stopped by {sig.name}\n".encode()), err
    assert not list(Path(os.environ["BBV_RUNTIME_DIR"]).glob("*.console"))


@needs_arm
def test_qemu_killed_by_a_signal_gives_128_plus_n(tree):
    warm_probe_cache(tree)
    proc = subprocess.Popen(BBV + ["run", "--blk", "a.img"], cwd=tree, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        qemu = wait_for_child(proc)
        wait_until(lambda: is_qemu(qemu), "QEMU to start")
        os.kill(qemu, signal.SIGKILL)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGKILL, err


@needs_arm
@pytest.mark.parametrize("stage", ["probe", "boot"])
def test_qemu_dies_with_bbv_even_on_sigkill(tree, stage):
    if stage == "boot":
        warm_probe_cache(tree)
    proc = subprocess.Popen(BBV + ["run", "--blk", "a.img"], cwd=tree, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qemu = wait_for_child(proc, poll=0.0005)  # killed as early as can be: before QEMU's exec
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(qemu) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphaned = alive(qemu)
    if orphaned:
        os.kill(qemu, signal.SIGKILL)
    assert not orphaned
