"""Pure logic of bbv's gdb support: endpoints, the -gdb/-S options (golden files), the
relocation offset from `iomem` output captured from real barebox and from code around the
PC, and where the image was loaded when the CPU is halted in QEMU's boot code."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from conftest import ROOT, TESTS
from qemu_helpers import synthetic_info

from barebox_virtio_cli.debug import endpoint
from barebox_virtio_cli.debug.elf import Section
from barebox_virtio_cli.debug.gdbrun import HELPER, find_gdb, gdb_argv
from barebox_virtio_cli.debug.reloc import (
    load_candidates,
    locate,
    offset_from_iomem,
    parse_iomem,
)
from barebox_virtio_cli.debug.symbols import find_symbols, pbl_of
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.args import RunSpec, build_command, format_command
from barebox_virtio_cli.targets.catalog import load_catalog

pytestmark = pytest.mark.pure
IOMEM = TESTS / "fixtures" / "iomem"
GOLDEN = TESTS / "golden" / "gdb"
CATALOG = load_catalog([ROOT / "configs"])


# --- iomem captured from real barebox v2026.06 (`bbv run -t T --exec iomem`) -------------

@pytest.mark.parametrize(("name", "code", "link", "offset"), [
    ("vexpress", (0x4F901000, 0x4F9F0FFF), 0, 0x4F901000),  # linked at 0 on ARM, RISC-V
    ("riscv64", (0x8FB01000, 0x8FBC8FFF), 0, 0x8FB01000),
    ("armv8", (0x7FA10000, 0x7FB2BFFF), 0, 0x7FA10000),
    ("malta", (0xAFF50000, 0xAFFC8087), 0xA0800000, 0xF750000),  # MIPS: at TEXT_BASE
])
def test_barebox_code_region_from_captured_iomem(name, code, link, offset):
    text = (IOMEM / f"{name}.txt").read_text()
    assert parse_iomem(text)["barebox code"] == code
    assert offset_from_iomem(text, link_address=link) == offset


def test_iomem_without_barebox_code_and_with_colours():
    assert offset_from_iomem("  0x40000000 - 0x4fffffff (size   256 MiB) ram0\n") is None
    coloured = "\x1b[1m  0x4f901000 - 0x4f9f0fff (size   960 KiB) barebox code\x1b[0m\r\n"
    assert parse_iomem(coloured) == {"barebox code": (0x4F901000, 0x4F9F0FFF)}


# --- the offset from the code around the PC ----------------------------------------------

def fake_code(size: int = 64 * 1024, seed: int = 1) -> Section:
    rng = random.Random(seed)
    return Section(".text", 0, rng.randbytes(size))


def relocated_window(text: Section, offset: int, pc_link: int, patch_every: int = 0,
                     before: int = 128, size: int = 256) -> tuple[int, bytes]:
    """What the CPU's memory shows around the PC when `text` runs at link address + offset;
    every `patch_every`-th word changed, like literal pools relocation patched."""
    start_link = pc_link - before
    data = bytearray(text.data[start_link:start_link + size])
    if patch_every:
        for pos in range(0, len(data), 4 * patch_every):
            data[pos:pos + 4] = (int.from_bytes(data[pos:pos + 4], "little") + offset
                                 & 0xFFFFFFFF).to_bytes(4, "little")
    return start_link + offset, bytes(data)


@pytest.mark.parametrize("patch_every", [0, 8, 5])
def test_locate_finds_the_offset_despite_relocated_words(patch_every):
    text = fake_code()
    offset, pc_link = 0x4F901000, 0xB30C
    start, window = relocated_window(text, offset, pc_link, patch_every)
    match = locate(pc_link + offset, window, start, [text])
    assert match is not None and match.offset == offset and match.section == ".text"
    assert match.score == pytest.approx(1 - (1 / patch_every if patch_every else 0), abs=0.02)


def test_locate_refuses_code_that_is_not_the_elfs():
    text, other = fake_code(seed=1), fake_code(seed=2)
    start, window = relocated_window(other, 0x40000000, 0x2000)
    assert locate(0x40002000, window, start, [text]) is None


def test_locate_refuses_a_mostly_patched_window_and_blank_memory():
    text = fake_code()
    start, window = relocated_window(text, 0x80200000, 0x3000, patch_every=2)
    assert locate(0x80203000, window, start, [text]) is None  # half the words differ
    zeros = Section(".text", 0, bytes(4096))
    assert locate(0x80200800, bytes(256), 0x80200780, [zeros]) is None


def test_locate_needs_the_pc_inside_the_matching_section():
    text = fake_code(size=8192)
    start, window = relocated_window(text, 0x40000000, 8192 - 128, before=128, size=128)
    assert locate(0x40000000 + 8192 + 64, window, start, [text]) is None


def test_load_candidates_follow_the_boot_code_to_the_image():
    # QEMU's ARM virt boot stub at 0x40000000 as gdb reads it with --gdb-wait: the kernel
    # entry 0x40010000 is a literal; the pages after the PC are candidates too.
    stub = bytes.fromhex("0000a0e3 04109fe5 04209fe5 04f09fe5 ffffffff 00000048 00000140"
                         " 00000000")
    candidates = load_candidates(stub, 0x40000000)
    assert 0x40010000 in candidates and 0x48000000 in candidates
    assert candidates.index(0x40010000) < candidates.index(0x40001000)
    assert 0x40000000 + 63 * 4096 in candidates and 0x40000000 + 64 * 4096 not in candidates
    assert 0xFFFFFFFF not in candidates  # not aligned: no code starts there


# --- endpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "host", "port", "remote", "qemu"), [
    ("tcp::1234", "", 1234, "127.0.0.1:1234", "tcp::1234"),
    ("tcp:localhost:1234", "localhost", 1234, "localhost:1234", "tcp:localhost:1234"),
    ("tcp:[::1]:1234", "::1", 1234, "[::1]:1234", "tcp:[::1]:1234"),
    ("1234", "", 1234, "127.0.0.1:1234", "tcp::1234"),
    ("host:99", "host", 99, "host:99", "tcp:host:99"),
])
def test_tcp_endpoints(text, host, port, remote, qemu):
    parsed = endpoint.parse(text)
    assert (parsed.host, parsed.port, parsed.path) == (host, port, "")
    assert endpoint.gdb_remote(parsed) == remote
    assert endpoint.qemu_arg(parsed) == qemu


def test_unix_endpoint_doubles_commas_for_qemu_only():
    parsed = endpoint.parse("unix:/tmp/a,b.sock")
    assert endpoint.gdb_remote(parsed) == "/tmp/a,b.sock"
    assert endpoint.qemu_arg(parsed) == "unix:/tmp/a,,b.sock,server=on,wait=off"
    assert str(parsed) == "unix:/tmp/a,b.sock"


@pytest.mark.parametrize(("text", "message"), [
    ("tcp::0", "port 0 out of range"),
    ("tcp::70000", "port 70000 out of range"),
    ("tcp:host", "is not tcp:HOST:PORT"),
    ("nonsense", "is not tcp:HOST:PORT"),
    ("unix:", "unix: needs a socket path"),
    ("unix:/tmp/a b.sock", "socket path with spaces"),
    ("unix:/tmp/" + "x" * 110, "more than the 107"),
])
def test_bad_endpoints(text, message):
    with pytest.raises(UsageError, match=message):
        endpoint.parse(text)


def test_bare_gdb_takes_a_free_loopback_port():
    stub = endpoint.for_qemu("")
    assert stub.host == "127.0.0.1" and 0 < stub.port < 65536
    assert endpoint.for_qemu(f"tcp::{stub.port}").host == "127.0.0.1"  # loopback, not all


def test_unix_stub_path_checks(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(UsageError, match="exists and is not a socket"):
        endpoint.for_qemu(f"unix:{regular}")
    with pytest.raises(UsageError, match="does not exist"):
        endpoint.for_qemu(f"unix:{tmp_path}/no/dir.sock")
    assert endpoint.for_qemu(f"unix:{tmp_path}/g.sock").path == f"{tmp_path}/g.sock"


# --- QEMU options: golden files ----------------------------------------------------------

@pytest.mark.parametrize(("name", "gdb", "wait"), [
    ("vexpress-gdb", "tcp:127.0.0.1:1234", False),
    ("riscv64-gdb-wait", "unix:/run/user/1000/bbv/g,,db.sock,server=on,wait=off", True),
])
def test_gdb_options_match_golden_file(name, gdb, wait):
    target = CATALOG.get(name.split("-")[0])
    spec = RunSpec(image=Path("/work/barebox/images") / target.image, gdb=gdb, gdb_wait=wait,
                   qemu_args=["-d", "guest_errors"])
    text = format_command(build_command(target, spec, synthetic_info(target.qemu))) + "\n"
    golden = GOLDEN / f"{name}.sh"
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


# --- symbols and gdb ---------------------------------------------------------------------

def build_dir(tmp_path: Path, cmd: str | None = "cat images/start_dt_2nd.pblb > x") -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "barebox").write_bytes(b"\x7fELF")
    (tmp_path / "images" / "barebox-dt-2nd.img").write_bytes(b"img")
    (tmp_path / "images" / "start_dt_2nd.pbl").write_bytes(b"\x7fELF")
    if cmd is not None:
        (tmp_path / "images" / ".barebox-dt-2nd.img.cmd").write_text(
            f"savedcmd_images/barebox-dt-2nd.img := {cmd}\n")
    return tmp_path


def test_symbols_beside_the_image_and_the_pbl_its_command_file_names(tmp_path):
    build = build_dir(tmp_path)
    image = build / "images" / "barebox-dt-2nd.img"
    symbols = find_symbols(image, None, "vexpress")
    assert symbols.barebox == build / "barebox"
    assert symbols.pbl == build / "images" / "start_dt_2nd.pbl"
    assert find_symbols(None, build, "vexpress").pbl is None  # no image: no PBL to pick


def test_no_command_file_no_pbl(tmp_path):
    build = build_dir(tmp_path, cmd=None)
    assert pbl_of(build, build / "images" / "barebox-dt-2nd.img") is None


def test_missing_barebox_elf_names_the_build(tmp_path):
    image = tmp_path / "images" / "x.img"
    image.parent.mkdir()
    image.write_bytes(b"")
    with pytest.raises(BbvError, match=r"no barebox ELF beside .*'bbv build armv8'"):
        find_symbols(image, None, "armv8")


def test_gdb_command_line_connects_then_loads_then_runs_the_users_arguments():
    stub = endpoint.parse("tcp::4321")
    assert gdb_argv("/usr/bin/gdb-multiarch", stub, ["-batch", "-ex", "bt"]) == [
        "/usr/bin/gdb-multiarch", "-q", "-ex", "target remote 127.0.0.1:4321",
        "-x", str(HELPER), "-batch", "-ex", "bt"]


def test_missing_gdb_is_one_line_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BbvError) as info:
        find_gdb(["aarch64-linux-gnu-", "aarch64-linux-"], "arm")
    assert str(info.value) == (
        "no gdb for arm: install gdb-multiarch (Debian/Ubuntu: apt install gdb-multiarch) or "
        "put a cross gdb (aarch64-linux-gnu-gdb, aarch64-linux-gdb, ...) on PATH")


def test_mips_gets_its_architecture_and_byte_order_before_connecting():
    from barebox_virtio_cli.debug.elf import Elf
    from barebox_virtio_cli.debug.gdbrun import arch_commands

    assert arch_commands(Elf("mips", 32, False, [])) == ["set architecture mips",
                                                         "set endian big"]
    assert arch_commands(Elf("mips", 64, True, [])) == ["set architecture mips",
                                                        "set endian little"]
    assert arch_commands(Elf("arm", 32, True, [])) == []  # QEMU's stub describes the CPU
    stub = endpoint.parse("tcp::4321")
    assert gdb_argv("gdb", stub, [], ["set endian big"])[:5] == [
        "gdb", "-q", "-ex", "set endian big", "-ex"]


def test_locate_at_the_start_of_the_code_ignores_the_window_before_it():
    # MIPS with --gdb-wait: the PC is the PBL's first instruction, the window's first half is
    # memory before the image; and QEMU's malta patched one word (its board ID at 0x10).
    text = fake_code(size=4096)
    window = bytearray(bytes(128) + text.data[:128])
    window[128 + 0x10:128 + 0x14] = (0x420).to_bytes(4, "big")
    match = locate(0xBFC00000, bytes(window), 0xBFC00000 - 128, [
        Section(".text", 0xA0600000, text.data)])
    assert match is not None and match.offset == 0xBFC00000 - 0xA0600000
    assert match.score == pytest.approx(31 / 32)
