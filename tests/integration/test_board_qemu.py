"""The board-debugging options against real QEMU: --dump-dtb writes a device tree that dtc
parses, --flash keeps what the guest programs into the NOR flash across two QEMU runs (with a
tiny flash-counting guest, tests/tinyguest/flashcount.s), --screenshot saves QEMU's screen,
--qemu runs (and probes) another QEMU binary."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import BBV, bbv, need
from process_helpers import CROSS, TINYGUEST, assemble

FDT_MAGIC = b"\xd0\x0d\xfe\xed"
pytestmark = [pytest.mark.qemu, need("qemu-system-arm")]
needs_as = need(f"{CROSS}as", f"{CROSS}ld", f"{CROSS}objcopy")


@pytest.fixture(scope="module")
def guests(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("guests")
    return {name: assemble(TINYGUEST / f"{name}.s", out) for name in ("tinyguest", "flashcount")}


def dts(path: Path) -> str:
    return subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-o", "-", str(path)],
                          capture_output=True, text=True, check=True).stdout


@need("dtc")
@pytest.mark.parametrize("target,binary", [("vexpress", "qemu-system-arm"),
                                           ("virt64", "qemu-system-aarch64"),
                                           ("riscv64", "qemu-system-riscv64")])
def test_dump_dtb_writes_the_tree_of_this_command_line(tmp_path, target, binary):
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed")
    out = tmp_path / "dir,with comma" / "qemu.dtb"
    out.parent.mkdir()
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    result = bbv("run", "-t", target, "--dump-dtb", str(out), "--blk", str(disk), "--rng",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote QEMU's device tree for {target} to {out}" in result.stderr
    assert out.read_bytes()[:4] == FDT_MAGIC
    text = dts(out)
    assert "virtio_mmio@" in text and "memory@" in text


@need("dtc")
@needs_as
def test_bootargs_reach_the_dumped_tree_and_the_guest_boots_with_them(tmp_path, guests):
    out = tmp_path / "qemu.dtb"
    result = bbv("run", "-t", "vexpress", "--image", str(guests["tinyguest"]), "--bootarg",
                 "foo=bar", "--bootarg", "barebox.security.policy=devel", "--dump-dtb", str(out))
    assert result.returncode == 0, result.stderr
    assert 'bootargs = "foo=bar barebox.security.policy=devel";' in dts(out)
    # the tree passed back in with --dtb: QEMU boots with it (and fills in /chosen itself)
    boot = bbv("run", "-t", "vexpress", "--image", str(guests["tinyguest"]), "--dtb", str(out),
               "--exec", "true", "--timeout", "30")
    assert boot.returncode == 0, boot.stderr


@needs_as
def test_flash_survives_a_restart(tmp_path, guests):
    """Each boot of the counter prints the count it finds in flash and programs the next one."""
    flash = tmp_path / "flash.img"
    counts = []
    for _ in range(2):
        result = bbv("run", "-t", "virt", "--image", str(guests["flashcount"]), "--flash",
                     str(flash), "--expect", r"boot count: (\d)", "--json", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        counts.append(report["expectations"][0]["match"])
    assert counts == ["boot count: 0", "boot count: 1"]
    data = flash.read_bytes()
    assert len(data) == 64 << 20
    assert data.startswith(guests["flashcount"].read_bytes())
    assert data[0x3c00000:0x3c00004] == (2).to_bytes(4, "little")  # what the guest programmed
    # the flash is the board's: it boots without the image (none given, none built)
    third = bbv("run", "-t", "virt", "--flash", str(flash), "--expect", "boot count: 2",
                "--timeout", "30", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    # without --flash the same guest starts from an erased flash every time
    again = bbv("run", "-t", "virt", "--image", str(guests["flashcount"]), "--expect",
                "boot count: 0", "--timeout", "30")
    assert again.returncode == 0, again.stderr


@needs_as
def test_flash_file_in_use_by_a_running_qemu_is_refused(tmp_path, guests):
    flash = tmp_path / "flash.img"
    assert bbv("run", "-t", "virt", "--image", str(guests["flashcount"]), "--flash", str(flash),
               "--expect", "boot count", "--timeout", "30").returncode == 0
    holder = subprocess.Popen(["qemu-system-arm", "-M", "virt", "-display", "none", "-S",
                               "-drive", f"if=pflash,format=raw,unit=0,file={flash}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            result = bbv("run", "-t", "virt", "--image", str(guests["flashcount"]), "--flash",
                         str(flash), "--dry-run")
            if result.returncode or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 2 and "in use by another QEMU" in result.stderr
    finally:
        holder.kill()
        holder.wait()


@needs_as
@pytest.mark.parametrize("suffix,magic", [(".ppm", b"P6"), (".png", b"\x89PNG")])
def test_screenshot_saves_qemus_screen(tmp_path, guests, suffix, magic):
    shot = tmp_path / f"screen{suffix}"
    result = bbv("run", "-t", "vexpress", "--image", str(guests["tinyguest"]), "--screenshot",
                 str(shot), "--exec", "echo hi", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes().startswith(magic)
    # ramfb that the guest never set up: QEMU's 640x480 "not initialized" screen
    assert f"screenshot: {shot}, 640x480" in result.stderr


@needs_as
def test_screenshot_leaves_no_qmp_socket(tmp_path, guests):
    before = set(Path(tempdir()).glob("bbv-qmp-*"))
    result = bbv("run", "-t", "vexpress", "--image", str(guests["tinyguest"]), "--screenshot",
                 str(tmp_path / "s.ppm"), "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert set(Path(tempdir()).glob("bbv-qmp-*")) <= before


def tempdir() -> str:
    return tempfile.gettempdir()


@need("dtc")
def test_another_qemu_binary_is_run_and_probed(tmp_path, monkeypatch):
    """A copy of the installed QEMU stands in for a QEMU build of one's own, installed into a
    prefix (QEMU looks for its ROMs relative to the binary: ../share/qemu, ../lib/ipxe/qemu)."""
    installed = Path(shutil.which("qemu-system-arm")).resolve()
    own = tmp_path / "prefix" / "bin" / "qemu-system-arm"
    own.parent.mkdir(parents=True)
    shutil.copy2(installed, own)
    for data in ("share", "lib"):
        (tmp_path / "prefix" / data).symlink_to(installed.parent.parent / data)
    out = tmp_path / "own.dtb"
    result = bbv("run", "-t", "vexpress", "--qemu", str(own), "--dump-dtb", str(out), "--rng")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == FDT_MAGIC
    printed = bbv("run", "-t", "vexpress", "--qemu", str(own), "--dump-dtb", str(out), "--dry-run")
    assert printed.stdout.startswith(f"{own} \\")
    probes = json.loads((Path(os.environ["BBV_CACHE_DIR"]) / "qemu-probes.json").read_text())
    assert str(own) in probes["probes"]


@needs_as
def test_sigterm_during_a_screenshot_run_leaves_nothing_behind(tmp_path, guests):
    """QEMU stopped, the QMP socket's directory removed, no half-taken picture, exit 143."""
    from test_scripted import qemu_pids, wait_until

    tmp, shot = tmp_path / "tmp", tmp_path / "s.png"
    tmp.mkdir()
    proc = subprocess.Popen([*BBV, "run", "-t", "vexpress", "--image", str(guests["tinyguest"]),
                             "--screenshot", str(shot), "--exec", "hang", "--timeout", "60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        assert wait_until(lambda: qemu_pids(guests["tinyguest"])), "QEMU did not start"
        qemu = qemu_pids(guests["tinyguest"])
        assert len(list(tmp.glob("bbv-qmp-*"))) == 1
        time.sleep(1)  # the session waits for 'hang' by now
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in qemu), 10)
    assert list(tmp.iterdir()) == [] and not shot.exists()


# --- bad input through the command: one line, exit 2, nothing written --------------------------

@pytest.fixture
def tree(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("barebox-dt-2nd.img", "barebox-qemu-malta.img", "barebox-qemu-virt.img"):
        (tmp_path / "images" / name).write_bytes(bytes(4096))
    return tmp_path


@pytest.mark.parametrize("args,needle", [
    (["-t", "vexpress", "--dtb", "missing.dtb"], "--dtb missing.dtb: no such file"),
    (["-t", "malta", "--bootarg", "foo=bar"], "--bootarg: target 'malta' loads barebox with -bios"),
    (["-t", "vexpress", "--flash", "f.img"], "--flash: target 'vexpress' loads barebox with "
     "-kernel"),
    (["-t", "malta", "--dump-dtb", "m.dtb"], "--dump-dtb: target 'malta' (malta) has no device "
     "tree from QEMU; only device-tree machines such as ARM and RISC-V virt have one"),
    (["-t", "vexpress", "--qemu", "/nonexistent/qemu-system-arm"], "--qemu /nonexistent/"
     "qemu-system-arm: no such file"),
    (["-t", "vexpress", "--qemu", "images/barebox-dt-2nd.img"], "not executable"),
    (["-t", "vexpress", "--qemu", "/bin/true"], "--qemu /bin/true: not a QEMU system emulator? "
     "/bin/true did not answer QMP queries"),
    (["-t", "vexpress", "--screenshot", "no/such/dir/s.png"], "directory"),
    (["-t", "virt", "--flash", "images/barebox-dt-2nd.img"], "exists and is 4096 bytes, not a "
     "64 MiB flash image"),
    (["-t", "virt", "--reflash"], "--reflash belongs to --flash"),
])
def test_bad_board_options_are_one_line(tree, args, needle):
    before = {p: p.read_bytes() for p in (tree / "images").iterdir()}
    result = bbv("run", *args, "--dry-run", cwd=tree, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bbv: error: "), result.stderr
    assert needle in lines[0]
    assert {p: p.read_bytes() for p in (tree / "images").iterdir()} == before
    assert not (tree / "f.img").exists() and not (tree / "m.dtb").exists()
