"""`bbv quickstart`: the checks judged on output captured from a real barebox, the command's bad
input, and the whole flow on the miniature barebox tree (tests/fixtures/minibarebox, its image
replaced by the tiny guest of tests/tinyguest so that QEMU boots it) served as a release tarball
from a loopback HTTP server: download, checksum, cache, unpack, real cross build, real disk
images, real QEMU boot. The tiny guest has no virtio, so the flow must stop at the virtio
console check; a real barebox (BBV_BAREBOX_SRC) must pass every check."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, bbv, need
from http_helpers import HttpServer

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.quickstart import plan as qs

FIXTURE = ROOT / "tests" / "fixtures" / "minibarebox"
TINYGUEST = ROOT / "tests" / "tinyguest" / "tinyguest.s"
VERSION = "2099.01.0"
NAME = qs.tarball_name(VERSION)
TOKEN = bytes.fromhex("15db128e")

# What barebox v2026.06 (multi_v7 on QEMU 7.2, two disks, RNG, virtio console) printed.
LS_DEV = """cs0                         cs1
full                        fw_cfg
hwrng0                      input0
mem                         null
virtioblk0                  virtioblk1
zero"""
CAT = f"mounted /dev/virtioblk0 on /mnt/virtioblk0\n{qs.greeting(TOKEN)}"
MD_RAW = "00000000: 15 db 12 8e                                       ....\n"
MD_RNG = ("00000000: 15 db 12 8e 3d b1 d6 fe  7d 3d 66 67 ab 29 12 b3   ....=...}=fg.)..\n"
          "00000010: 5c 0a 91 e2 77 30 c8 4d  02 6b f9 1e 83 d4 60 2a   \\...w0.M.k....`*")


def outcomes(outputs: list[tuple[str, int | None]]) -> dict[str, qs.Outcome]:
    return {o.name: o for o in qs.judge(qs.checks(TOKEN, "cs1"), outputs)}


def good() -> list[tuple[str, int | None]]:
    return [(LS_DEV, 0), (CAT, 0), ("", 0), (MD_RAW, 0), (MD_RNG, 0)]


@pytest.mark.pure
def test_checks_pass_on_real_barebox_output():
    commands = qs.script_commands(qs.checks(TOKEN, "cs1"))
    assert commands == ["ls /dev", "cat /mnt/virtioblk0/hello.txt",
                        "mw -b -d /dev/virtioblk1 0 0x15 0xdb 0x12 0x8e",
                        "md -b -s /dev/virtioblk1 0+4", "md -b -s /dev/hwrng0 0+32"]
    got = outcomes(good())
    assert all(o.ok for o in got.values())
    assert got["devices"].detail == "/dev/virtioblk0, /dev/virtioblk1, /dev/hwrng0, /dev/cs1"
    assert got["virtio-blk: raw write"].detail == "wrote and read back 15 db 12 8e"
    assert got["virtio-rng"].detail == "32 bytes from /dev/hwrng0: 15 db 12 8e 3d b1 d6 fe ..."


@pytest.mark.pure
def test_each_check_fails_for_its_own_reason():
    bad = good()
    bad[0] = (LS_DEV.replace("hwrng0", "prng  "), 0)
    bad[1] = ("hello from bbv quickstart 00000000", 0)
    bad[3] = ("00000000: 00 00 00 00     ....", 0)
    bad[4] = ("00000000: " + "00 " * 16 + "\n00000010: " + "00 " * 16, 0)
    got = outcomes(bad)
    assert got["devices"].detail == "/dev lacks hwrng0"
    assert got["virtio-blk: FAT file"].detail.startswith("hello.txt did not read back")
    assert got["virtio-blk: raw write"].detail == "read back 00 00 00 00, wrote 15 db 12 8e"
    assert "not random" in got["virtio-rng"].detail
    short = outcomes([*good()[:4], ("00000000: 01 02", 0)])["virtio-rng"]
    assert short.detail.startswith("read 2 of 32 bytes")


@pytest.mark.pure
def test_failed_and_missing_commands_fail_their_checks():
    got = outcomes([(LS_DEV, 0), ("cat: No such file or directory", 1), ("", None)])
    assert got["devices"].ok
    assert got["virtio-blk: FAT file"].detail == (
        "'cat /mnt/virtioblk0/hello.txt' failed (exit status 1): cat: No such file or directory")
    assert got["virtio-blk: raw write"].detail == \
        "'mw -b -d /dev/virtioblk1 0 0x15 0xdb 0x12 0x8e' did not run"
    assert got["virtio-rng"].detail == "did not run"


@pytest.mark.pure
def test_raw_write_must_reach_the_image_file():
    judged = qs.judge(qs.checks(TOKEN, "cs1"), good())
    kept = {o.name: o for o in qs.raw_on_host(judged, TOKEN, TOKEN)}
    assert all(o.ok for o in kept.values())
    assert kept[qs.RAW_CHECK].detail.endswith("; in the image file too")
    lost = {o.name: o for o in qs.raw_on_host(judged, b"\0\0\0\0", TOKEN)}
    assert not lost[qs.RAW_CHECK].ok and "00 00 00 00" in lost[qs.RAW_CHECK].detail


@pytest.mark.pure
def test_step_error_names_step_and_fix_and_keeps_exit_status():
    err = qs.step_error(0, "check this machine", "vexpress", UsageError("qemu missing"))
    assert isinstance(err, UsageError)
    assert str(err) == ("step 1/6 (check this machine) failed: qemu missing; "
                        "'bbv doctor vexpress' lists what to install")
    assert str(qs.step_error(1, "get barebox", "x", BbvError("offline"))) == \
        "step 2/6 (get barebox) failed: offline"


@pytest.mark.pure
def test_versions_sums_and_go_on_commands():
    assert qs.check_version("2024.09.0") == "2024.09.0"
    for bad in ("v2024.09.0", "2024.9", "latest"):
        with pytest.raises(UsageError, match="is not a barebox release"):
            qs.check_version(bad)
    with pytest.raises(UsageError, match="64 hexadecimal"):
        qs.check_sha256("abc")
    assert qs.pinned_sha256(qs.DEFAULT_VERSION, None) == qs.KNOWN_SHA256[qs.DEFAULT_VERSION]
    assert qs.pinned_sha256("2099.01.0", None) is None
    assert qs.mirror_url({qs.MIRROR_ENV: "http://m/"}) == "http://m"
    run, console = qs.go_on("vexpress", Path("/w/b.img"), [Path("/w/a b.img")], Path("/r/c"))
    assert run == "bbv run --target vexpress --image /w/b.img --blk '/w/a b.img' --rng " \
                  "--console /r/c"
    assert console == "bbv console /r/c"


# --- the command -------------------------------------------------------------------------

def error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("bbv: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_options_are_one_line_usage_errors(tmp_path):
    done = bbv("quickstart", "--src", str(tmp_path), "--version", "2024.09.0")
    assert done.returncode == 2 and "with --src the tree is built as it is" in error_line(done)
    done = bbv("quickstart", "--version", "latest")
    assert done.returncode == 2 and "is not a barebox release" in error_line(done)
    (tmp_path / "mine.txt").write_text("keep me")
    done = bbv("quickstart", "--workdir", str(tmp_path))
    assert done.returncode == 2 and "holds other files" in error_line(done)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    done = bbv("quickstart", "--target", "nosuch", "--src", str(tmp_path))
    assert done.returncode == 2 and "unknown target 'nosuch'" in error_line(done)


def test_offline_without_src_says_to_pass_src(tmp_path):
    mirror = f"http://127.0.0.1:{closed_port()}"
    done = bbv("quickstart", "--workdir", str(tmp_path / "w"), "--version", VERSION, "--sha256",
               "0" * 64, env={qs.MIRROR_ENV: mirror})
    assert done.returncode == 1
    line = error_line(done)
    assert line.startswith("bbv: error: step 2/6 (get barebox) failed: download of ")
    assert "Connection refused; offline? pass --src DIR" in line


def test_machine_that_cannot_boot_points_at_doctor(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = bbv("quickstart", "--src", str(FIXTURE), "--workdir", str(tmp_path / "w"),
               env={"PATH": str(empty)})
    assert done.returncode == 1
    line = error_line(done)
    assert "step 1/6 (check this machine) failed: this machine cannot build and boot" in line
    assert "qemu-system-arm: not on PATH (Debian/Ubuntu: apt install qemu-system-arm)" in line
    assert line.endswith("'bbv doctor vexpress' lists what to install")


# --- the flow on the miniature tree ----------------------------------------------------------

TINY_RULE = """
# bbv quickstart tests: the image is the tiny guest (tests/tinyguest), which QEMU boots.
$(objtree)/images/$(image): $(srctree)/tinyguest.s
\t@mkdir -p $(dir $@)
\t@echo "  AS      tinyguest"
\t@$(CROSS_COMPILE)as -o $(objtree)/tinyguest.o $<
\t@$(CROSS_COMPILE)ld -Ttext=0x40010000 -o $(objtree)/tinyguest.elf $(objtree)/tinyguest.o
\t@$(CROSS_COMPILE)objcopy -O binary $(objtree)/tinyguest.elf $@
"""
tools = need("make", "qemu-system-arm", "arm-linux-gnueabihf-gcc", "mcopy", "mkfs.vfat")


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    """The miniature tree whose vexpress build makes the tiny guest as barebox-dt-2nd.img."""
    tree = tmp_path_factory.mktemp("tree") / f"barebox-{VERSION}"
    shutil.copytree(FIXTURE, tree)
    shutil.copy(TINYGUEST, tree / "tinyguest.s")
    with (tree / "Makefile").open("a") as fh:
        fh.write(TINY_RULE)
    return tree


def tarball(tree: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        tar.add(tree, arcname=tree.name)
    return buf.getvalue()


class Mirror(HttpServer):
    """barebox.org's download directory."""

    def publish(self, version: str, data: bytes, listed: str | None = "same") -> None:
        name = qs.tarball_name(version)
        self.files[f"/{name}"] = data
        if listed is not None:
            digest = hashlib.sha256(data).hexdigest() if listed == "same" else listed
            self.files[f"/{name}.sha256"] = f"{digest}  {name}\n".encode()


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.close()


def cache() -> Path:
    return Path(os.environ["BBV_CACHE_DIR"]) / "barebox"


def assert_boots_tiny_guest_then_fails_at_the_virtio_console(done):
    assert done.returncode == 1, done.stderr
    assert "  done" in done.stderr.split("[5/6] make disk images")[1]
    assert "model: bbv tiny guest" in done.stderr  # QEMU booted the built image: its last lines
    line = error_line(done)
    assert line.startswith("bbv: error: step 6/6 (boot and check) failed: 5 of 5 checks failed")
    assert "no answer on the virtio console within 2 s" in line
    assert line.endswith("'bbv doctor vexpress' checks QEMU")
    assert "virtio console" in done.stdout and "FAILED" in done.stdout  # the table


@pytest.mark.qemu
@tools
def test_download_verify_build_boot_then_cached(mirror, tiny_tree, tmp_path):
    mirror.publish(VERSION, tarball(tiny_tree))
    work = tmp_path / "work"
    done = bbv("quickstart", "--version", VERSION, "--workdir", str(work), "--timeout", "2",
               env={qs.MIRROR_ENV: mirror.url})
    assert mirror.requests == [f"/{NAME}.sha256", f"/{NAME}"]
    digest = hashlib.sha256(mirror.files[f"/{NAME}"]).hexdigest()
    assert f"sha256 {digest} verified" in done.stderr
    assert (cache() / NAME).read_bytes() == mirror.files[f"/{NAME}"]
    tree = work / f"barebox-{VERSION}"
    assert (tree / "tinyguest.s").is_file() and not list(work.glob(".unpack-*"))
    image = work / "build-vexpress" / "images" / "barebox-dt-2nd.img"
    assert image.read_bytes() != b"" and b"bbv tiny guest" in image.read_bytes()
    # The disks: a FAT one with this run's file on it, read back with mtools; a blank one.
    fat = work / qs.FAT_IMAGE
    listed = subprocess.run(["mtype", "-i", str(fat), f"::/{qs.FILE_NAME}"], check=True,
                            capture_output=True, text=True,
                            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    assert listed.startswith("hello from bbv quickstart ")
    assert (work / qs.RAW_IMAGE).stat().st_size == qs.DISK_SIZE
    assert_boots_tiny_guest_then_fails_at_the_virtio_console(done)

    # Offline now: a new workdir unpacks the cached tarball, verified against its kept sum.
    offline = {qs.MIRROR_ENV: f"http://127.0.0.1:{closed_port()}"}
    again = bbv("quickstart", "--version", VERSION, "--workdir", str(tmp_path / "w2"), "--timeout",
                "2", env=offline)
    assert f"{NAME} from the cache" in again.stderr
    assert_boots_tiny_guest_then_fails_at_the_virtio_console(again)
    # A damaged cache is not trusted: it is fetched again, and offline that fails clearly.
    (cache() / NAME).write_bytes(b"damaged")
    shutil.rmtree(tmp_path / "w2")
    broken = bbv("quickstart", "--version", VERSION, "--workdir", str(tmp_path / "w2"), env=offline)
    assert broken.returncode == 1 and "offline? pass --src DIR" in error_line(broken)


@pytest.mark.qemu
@tools
def test_offline_with_src_builds_and_boots(tiny_tree, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_tree, src)
    offline = {qs.MIRROR_ENV: f"http://127.0.0.1:{closed_port()}"}
    done = bbv("quickstart", "--src", str(src), "--workdir", str(tmp_path / "w"), "--timeout", "2",
               env=offline)
    assert f"source tree {src}" in done.stderr
    assert "toolchain: arm-linux-gnueabihf-" in done.stderr
    assert_boots_tiny_guest_then_fails_at_the_virtio_console(done)
    assert not (tmp_path / "w" / f"barebox-{VERSION}").exists()  # nothing downloaded
    # A pipe gets whole rows, as from bbv targets and doctor: no wrapping at 80 columns.
    rows = [line for line in done.stdout.splitlines() if "FAILED" in line]
    assert len(rows) == 5 and all(row.rstrip().endswith("│") for row in rows), done.stdout
    assert any(len(row) > 80 for row in rows), done.stdout


def test_checksum_mismatch_keeps_nothing(mirror, tiny_tree, tmp_path):
    data = tarball(tiny_tree)
    mirror.publish(VERSION, data, listed="0" * 64)
    done = bbv("quickstart", "--version", VERSION, "--workdir", str(tmp_path / "w"),
               env={qs.MIRROR_ENV: mirror.url})
    assert done.returncode == 1
    got = hashlib.sha256(data).hexdigest()
    assert (f"step 2/6 (get barebox) failed: checksum mismatch for {NAME}: expected "
            f"{'0' * 64}, got {got}; the download was deleted") in error_line(done)
    assert not cache().exists() or not list(cache().iterdir())
    assert not (tmp_path / "w" / f"barebox-{VERSION}").exists()


def test_known_release_is_checked_against_bbvs_own_sum(mirror, tiny_tree, tmp_path):
    """A server that serves something else as a release bbv knows cannot pass its own sum."""
    mirror.publish(qs.DEFAULT_VERSION, tarball(tiny_tree))  # with a matching .sha256
    done = bbv("quickstart", "--workdir", str(tmp_path / "w"), env={qs.MIRROR_ENV: mirror.url})
    assert done.returncode == 1
    assert f"expected {qs.KNOWN_SHA256[qs.DEFAULT_VERSION]}" in error_line(done)
    assert mirror.requests == [f"/{qs.tarball_name(qs.DEFAULT_VERSION)}"]  # no .sha256 asked


def test_release_without_any_sum_is_refused(mirror, tiny_tree, tmp_path):
    mirror.publish(VERSION, tarball(tiny_tree), listed=None)
    done = bbv("quickstart", "--version", VERSION, "--workdir", str(tmp_path / "w"),
               env={qs.MIRROR_ENV: mirror.url})
    assert done.returncode == 1
    assert "bbv knows no sha256 for barebox 2099.01.0" in error_line(done)
    assert "pass --sha256 HEX" in error_line(done)
    assert mirror.requests == [f"/{NAME}.sha256"]  # the tarball was not even downloaded


def test_given_sha256_is_what_counts(mirror, tiny_tree, tmp_path):
    mirror.publish(VERSION, tarball(tiny_tree))  # the server's own sum matches...
    done = bbv("quickstart", "--version", VERSION, "--sha256", "ab" * 32, "--workdir",
               str(tmp_path / "w"), env={qs.MIRROR_ENV: mirror.url})
    assert done.returncode == 1 and f"expected {'ab' * 32}" in error_line(done)  # ...not used


# --- a real barebox --------------------------------------------------------------------------

SRC = os.environ.get("BBV_BAREBOX_SRC")


@pytest.mark.barebox
@pytest.mark.qemu
@pytest.mark.skipif(not SRC, reason="BBV_BAREBOX_SRC (a barebox source tree) not set")
@tools
def test_real_barebox_passes_every_check():
    """Incremental in SRC/bbv-quickstart-test: the first run builds for minutes."""
    work = Path(SRC).resolve() / "bbv-quickstart-test"
    done = bbv("quickstart", "--src", SRC, "--workdir", str(work), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    for check in ("virtio console", "devices", "virtio-blk: FAT file", "virtio-blk: raw write",
                  "virtio-rng"):
        assert check in done.stdout
    assert "FAILED" not in done.stdout
    assert "bbv run --target vexpress --image" in done.stdout
    assert "bbv console " in done.stdout
