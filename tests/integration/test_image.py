"""bbv image create: the plan (sizes, layout, tool argv) and real images made with sfdisk,
mkfs.vfat and mtools, read back with sfdisk, mtools and a parse of the MBR bytes."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest
from conftest import bbv, need

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.images.plan import (
    AddFile,
    make_plan,
    parse_add,
    parse_size,
    steps,
)

TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mmd", "mtype", "mdir")
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@pytest.mark.pure
@pytest.mark.parametrize(("text", "size"), [("64M", 64 << 20), ("1G", 1 << 30),
                                            ("512k", 512 << 10), ("1048576", 1 << 20),
                                            ("64MiB", 64 << 20), ("2 G", 2 << 30)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.pure
@pytest.mark.parametrize("text", ["", "64Q", "-1M", "1.5M", "513"])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.pure
@pytest.mark.parametrize("text", ["0", "0M", "0 KiB"])
def test_zero_size_says_it_must_be_more_than_0(text):
    with pytest.raises(UsageError, match=f"^--size {text}: the size must be more than 0; "):
        parse_size(text)


@pytest.mark.pure
def test_add_names():
    exists = {"/tmp/a:b"}.__contains__
    assert parse_add("x/hello.txt", exists) == AddFile(Path("x/hello.txt"), "hello.txt")
    assert parse_add("x/h.txt:/boot/env/H", exists) == AddFile(Path("x/h.txt"), "boot/env/H")
    assert parse_add("/tmp/a:b:c", exists) == AddFile(Path("/tmp/a:b"), "c")
    for bad in ("f:../x", "f:a*b", "f:/", "f:a/../b", "/tmp/a:b"):
        with pytest.raises(UsageError):
            parse_add(bad, exists)


@pytest.mark.pure
def test_plan_checks():
    with pytest.raises(UsageError, match="too small"):
        make_plan(1 << 20, "mbr", True, [])
    with pytest.raises(UsageError, match="needs --fat"):
        make_plan(8 << 20, None, False, [AddFile(Path("f"), "f")])
    with pytest.raises(UsageError, match="given twice"):
        make_plan(8 << 20, None, True, [AddFile(Path("f"), "A.txt"), AddFile(Path("g"), "a.TXT")])


@pytest.mark.pure
def test_fat_variant_and_partition_type_follow_the_size():
    assert [(p.fat_bits, p.partition_type) for p in (
        make_plan(8 << 20, "mbr", True, []), make_plan(64 << 20, "mbr", True, []),
        make_plan(1 << 30, "mbr", True, []), make_plan(64 << 20, "mbr", False, []))] == \
        [(12, "1"), (16, "e"), (32, "c"), (16, "83")]


@pytest.mark.pure
def test_steps_put_the_filesystem_at_the_partition():
    plan = make_plan(64 << 20, "mbr", True, [AddFile(Path("/h/k"), "boot/a/k"),
                                             AddFile(Path("/h/e"), "boot/e")])
    run = steps(plan, Path("/i.img"))
    assert [s.tool for s in run] == ["sfdisk", "mkfs.vfat", "mmd", "mmd", "mcopy", "mcopy"]
    assert "start=2048, type=e" in run[0].stdin
    assert run[1].argv == ["mkfs.vfat", "-F", "16", "--offset", "2048", "/i.img",
                           str((64 << 10) - 1024)]
    assert [s.argv[-1] for s in run[2:4]] == ["::/boot", "::/boot/a"]
    assert run[4].argv[-4:] == ["-i", "/i.img@@1048576", "/h/k", "::/boot/a/k"]
    whole = steps(make_plan(8 << 20, None, True, []), Path("/i.img"))
    assert [s.argv for s in whole] == [["mkfs.vfat", "-F", "12", "/i.img", "8192"]]




def mbr_partitions(image: Path) -> list[tuple[int, int, int]]:
    """(type, first sector, sectors) of each used MBR entry, parsed from the bytes."""
    sector = image.read_bytes()[:512]
    assert sector[510:512] == b"\x55\xaa"
    entries = [struct.unpack_from("<B3xB3xII", sector, 446 + 16 * i) for i in range(4)]
    return [(kind, start, count) for _, kind, start, count in entries if kind]


def mtype(image: Path, offset: int, name: str) -> bytes:
    return subprocess.run(["mtype", "-i", f"{image}@@{offset}", f"::/{name}"], check=True,
                          capture_output=True, env=MTOOLS_ENV).stdout


@need(*TOOLS)
def test_partitioned_fat_image_reads_back(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "deep.bin").write_bytes(bytes(range(256)) * 64)
    done = bbv("image", "create", "disk.img", "--size", "64M", "--partition", "mbr", "--fat",
               "--add", "hello.txt", "--add", "hello.txt:boot/env/greeting",
               "--add", "tree:t", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    image = tmp_path / "disk.img"
    assert image.stat().st_size == 64 << 20
    assert mbr_partitions(image) == [(0x0E, 2048, (64 << 11) - 2048)]
    dump = json.loads(subprocess.run(["sfdisk", "--json", str(image)], check=True,
                                     capture_output=True, text=True).stdout)
    part = dump["partitiontable"]["partitions"]
    assert dump["partitiontable"]["label"] == "dos" and len(part) == 1
    assert (part[0]["start"], part[0]["type"]) == (2048, "e")
    assert mtype(image, 1 << 20, "hello.txt") == b"hello from the host\n"
    assert mtype(image, 1 << 20, "boot/env/greeting") == b"hello from the host\n"
    assert mtype(image, 1 << 20, "t/sub/deep.bin") == bytes(range(256)) * 64
    info = subprocess.run(["minfo", "-i", f"{image}@@1048576", "::"], capture_output=True,
                          text=True, env=MTOOLS_ENV).stdout
    assert 'disk type="FAT16' in info
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".disk.img")]


@need(*TOOLS)
def test_whole_disk_fat_and_blank_images(tmp_path):
    (tmp_path / "f").write_text("x")
    assert bbv("image", "create", "fat.img", "--size", "8M", "--fat", "--add", "f:F.TXT",
               cwd=tmp_path).returncode == 0
    assert mtype(tmp_path / "fat.img", 0, "F.TXT") == b"x"
    assert (tmp_path / "fat.img").read_bytes()[510:512] == b"\x55\xaa"  # FAT boot sector
    assert bbv("image", "create", "blank.img", "--size", "2M", cwd=tmp_path).returncode == 0
    data = (tmp_path / "blank.img").read_bytes()
    assert len(data) == 2 << 20 and data.count(0) == len(data)
    assert bbv("image", "create", "part.img", "--size", "4M", "--partition", "mbr",
               cwd=tmp_path).returncode == 0
    assert mbr_partitions(tmp_path / "part.img") == [(0x83, 2048, 8192 - 2048)]


@need(*TOOLS)
def test_existing_file_is_kept_without_force_and_replaced_with_it(tmp_path):
    target = tmp_path / "disk.img"
    target.write_text("precious")
    done = bbv("image", "create", "disk.img", "--size", "8M", "--fat", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"bbv: error: {Path('disk.img')} exists; add --force to " \
                                  "replace it"
    assert target.read_text() == "precious"
    done = bbv("image", "create", "disk.img", "--size", "8M", "--fat", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.stat().st_size == 8 << 20


@need(*TOOLS, "qemu-system-arm")
def test_force_never_replaces_an_image_a_running_qemu_has_open(tmp_path):
    disk = tmp_path / "a.img"
    disk.write_bytes(b"in use" + bytes(1 << 20))
    holder = subprocess.Popen(
        ["qemu-system-arm", "-M", "virt", "-S", "-display", "none", "-serial", "null",
         "-monitor", "none", "-drive", f"if=none,id=d,format=raw,file={disk}",
         "-device", "virtio-blk-device,drive=d"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not qemu_locked(disk):
            assert holder.poll() is None, holder.stderr.read()
            assert time.monotonic() < deadline, "QEMU did not lock a.img"
            time.sleep(0.02)
        done = bbv("image", "create", "a.img", "--size", "8M", "--force", cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    assert done.stderr == (f"bbv: error: {Path('a.img')} is open in a running QEMU (it holds "
                           "QEMU's image lock); stop that QEMU first, or create another file\n")
    assert disk.read_bytes().startswith(b"in use") and disk.stat().st_size == 6 + (1 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.img"]


def qemu_locked(path: Path) -> bool:
    """Whether another open file holds one of QEMU's byte-range locks (offsets 100-299)."""
    flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 100, 200, 0)
    with open(path, "rb") as fh:
        answer = fcntl.fcntl(fh, fcntl.F_OFD_GETLK, flock)
    return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK


@need(*TOOLS)
def test_a_failing_tool_leaves_nothing_behind(tmp_path):
    (tmp_path / "big").write_bytes(os.urandom(3 << 20))
    done = bbv("image", "create", "small.img", "--size", "2M", "--fat", "--add", "big",
               cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("bbv: error: mcopy failed (exit 1): ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


@need("mkfs.vfat", "sfdisk")
def test_missing_mtools_names_the_package(tmp_path):
    (tmp_path / "f").write_text("x")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = bbv("image", "create", "a.img", "--size", "8M", "--fat", "--add", "f",
               cwd=tmp_path, path=str(empty))
    assert done.returncode == 1
    assert done.stderr.strip() == ("bbv: error: mcopy is not installed (Debian/Ubuntu: apt "
                                   "install mtools; Fedora: dnf install mtools)")
    assert not (tmp_path / "a.img").exists()


def test_bad_input_is_one_line(tmp_path):
    for args in (["--size", "64Q"], ["--size", "8M", "--add", "nope", "--fat"],
                 ["--size", "8M", "--partition", "gpt"], []):
        done = bbv("image", "create", "x.img", *args, cwd=tmp_path)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "x.img").exists()
