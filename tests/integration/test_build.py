"""`bbv build` end to end on the miniature barebox tree (tests/fixtures/minibarebox) with real
make and real Debian cross compilers, then `bbv run --dry-run` finding what was built."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BBV, ROOT, bbv, need

pytestmark = need("make", "arm-linux-gnueabihf-gcc", "aarch64-linux-gnu-gcc")
FIXTURE = ROOT / "tests" / "fixtures" / "minibarebox"
EM_ARM, EM_AARCH64 = 40, 183




@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    return src


def elf_machine(path: Path) -> int:
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF"
    return int.from_bytes(data[18:20], "little")


def test_build_vexpress_records_image_that_run_finds(tree, tmp_path):
    done = bbv("build", "vexpress", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "multi_v7_defconfig (ARCH=arm; vexpress_defconfig not in this tree)" in done.stderr
    assert "toolchain: arm-linux-gnueabihf-" in done.stderr
    out = tree / "build-vexpress"
    image = out / "images" / "barebox-dt-2nd.img"
    assert elf_machine(image) == EM_ARM  # really compiled by the ARM cross compiler
    assert f"{image}" in done.stdout and "(the target's image)" in done.stdout
    record = json.loads((out / "bbv-build.json").read_text())
    assert record["target"] == "vexpress" and record["defconfig"] == "multi_v7_defconfig"
    assert record["image"] == str(image) and record["toolchain"] == "arm-linux-gnueabihf-"
    assert "  CC      common/barebox.o" in (out / "bbv-build.log").read_text()
    # The target's fragments were merged and reported.
    config = (out / ".config").read_text()
    assert "CONFIG_VIRTIO_INPUT=y" in config and "CONFIG_DRIVER_NET_VIRTIO=y" in config
    assert "CONFIG_BAREBOXENV_TARGET=y" not in config
    assert "kconfig: set" in done.stderr and "CONFIG_VIRTIO_INPUT=y" in done.stderr
    if shutil.which("qemu-system-arm"):
        ran = bbv("run", "--target", "vexpress", "--dry-run", cwd=tree)
        assert ran.returncode == 0, ran.stderr
        assert f"-kernel {image}" in ran.stdout
        # From anywhere else, through the index in the state dir.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        ran = bbv("run", "--target", "vexpress", "--dry-run", cwd=elsewhere)
        assert f"-kernel {image}" in ran.stdout


def test_second_build_is_incremental(tree):
    assert bbv("build", "vexpress", cwd=tree).returncode == 0
    again = bbv("build", "vexpress", cwd=tree)
    assert again.returncode == 0
    assert "incremental build" in again.stderr and "configuring" not in again.stderr
    log = (tree / "build-vexpress" / "bbv-build.log").read_text()
    assert "  CC " not in log  # nothing recompiled


def test_armv8_builds_with_arch_arm_and_a_64_bit_compiler(tree):
    done = bbv("build", "multi_v8_defconfig", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "ARCH=arm" in done.stderr and "aarch64-linux-gnu-" in done.stderr
    out = tree / "build-armv8"  # the defconfig maps to the catalog's armv8 target
    assert elf_machine(out / "images" / "barebox-dt-2nd.img") == EM_AARCH64
    assert json.loads((out / "bbv-build.json").read_text())["target"] == "armv8"


def test_generated_defconfig_and_user_fragments(tree, tmp_path):
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_NET=y\n")
    done = bbv("build", "maltael", "--cross-compile", "arm-linux-gnueabihf-", cwd=tree)
    assert done.returncode == 1 and "is a compiler for arm-linux-gnueabihf" in done.stderr
    done = bbv("build", "--arch", "arm", "--defconfig", "multi_v7", "-O", str(tmp_path / "o"),
               "--kconfig-add", str(frag), "--kconfig-add", "CONFIG_NO_SUCH_SYMBOL=y", cwd=tree)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "o" / ".config").read_text()
    assert "CONFIG_NET=y" in config
    assert "NOT set (missing dependency or unknown symbol): CONFIG_NO_SUCH_SYMBOL=y" \
        in done.stderr


def test_kbuild_output_is_honoured_and_verbose_streams(tree, tmp_path):
    out = tmp_path / "kout"
    done = bbv("build", "vexpress", "-v", cwd=tree, env={"KBUILD_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    assert (out / "images" / "barebox-dt-2nd.img").is_file()
    assert "  CC      common/barebox.o" in done.stdout


def test_build_failure_shows_compiler_error_log_and_status(tree):
    done = bbv("build", "broken_defconfig", cwd=tree)
    assert done.returncode == 1
    # Not a catalog defconfig: no CONFIG_ARM64 in it, so a 32-bit ARM compiler.
    assert "toolchain: arm-linux-gnueabihf-" in done.stderr
    assert "error: 'undeclared_symbol' undeclared" in done.stderr
    log = tree / "build-broken_defconfig" / "bbv-build.log"
    assert f"full output in {log}" in done.stderr
    assert "make failed (exit status 2)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, code, message", [
    (["nosuch"], 2, "neither a bbv target"),
    (["multi_v6_defconfig"], 2, "(close: multi_v8_defconfig, multi_v7_defconfig)"),
    (["vexprss"], 2, "nor a defconfig of this tree (close: vexpress)"),
    (["--arch", "arm", "--defconfig", "multi_v7_defconfg"], 2,
     "no defconfig 'multi_v7_defconfg' in"),
    (["--arch", "arm", "--defconfig", "multi_v7_defconfg"], 2, "(close: multi_v7_defconfig"),
    (["--defconfig", "x"], 2, "say what to build"),
    (["vexpress", "--kconfig-add", "missing.config"], 2, "neither a CONFIG_X=value line"),
    (["vexpress", "--arch", "mips"], 2, "is ARCH=arm, not 'mips'"),
])
def test_bad_input_is_one_line(tree, args, code, message):
    done = bbv("build", *args, cwd=tree)
    assert done.returncode == code
    assert message in done.stderr
    assert done.stderr.count("bbv: error:") == 1 and "Traceback" not in done.stderr


def test_not_a_barebox_tree(tmp_path):
    done = bbv("build", "vexpress", cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path} is not a barebox source tree" in done.stderr


def test_clean_refuses_a_directory_that_is_not_a_build_dir(tree, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    for extra in ([], ["--clean"]):
        done = bbv("build", "vexpress", *extra, "-O", str(precious), cwd=tree)
        assert done.returncode == 2 and "is not a barebox build directory" in done.stderr
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]
    assert (precious / "thesis.tex").read_text() == "years of work"
    done = bbv("build", "vexpress", "-O", str(tree), cwd=tree)
    assert done.returncode == 2 and "is the source tree" in done.stderr


def test_clean_rebuilds_a_build_dir_from_scratch(tree):
    assert bbv("build", "vexpress", cwd=tree).returncode == 0
    stale = tree / "build-vexpress" / "stale.o"
    stale.write_text("old")
    done = bbv("build", "vexpress", "--clean", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and "configuring" in done.stderr
    assert (tree / "build-vexpress" / "images" / "barebox-dt-2nd.img").is_file()


def test_a_locked_build_dir_is_not_built_in(tree):
    out = tree / "build-vexpress"
    out.mkdir()
    with open(out / ".bbv-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242\n")
        lock.flush()
        done = bbv("build", "vexpress", cwd=tree)
    assert done.returncode == 1
    assert f"another build is running in {out} (pid 4242)" in done.stderr
    assert not (out / ".config").exists()


def test_wrong_arch_cross_compile_never_reaches_make(tree):
    done = bbv("build", "vexpress", cwd=tree, env={"CROSS_COMPILE": "aarch64-linux-gnu-"})
    assert done.returncode == 1
    assert "not passed to make" in done.stderr
    assert not (tree / "build-vexpress").exists()


def test_missing_host_tools_are_named_with_packages(tree, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "gcc", "arm-linux-gnueabihf-gcc", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    done = bbv("build", "vexpress", cwd=tree, env={"PATH": str(bin_dir)})
    assert done.returncode == 1
    assert "host tools missing: bison, flex" in done.stderr
    assert "apt install bison flex" in done.stderr


def test_terminated_build_leaves_no_make_behind(tree, tmp_path):
    # A compiler that hangs on compiling (but answers -dumpmachine), to kill bbv mid-build.
    bin_dir = tmp_path / "slowbin"
    bin_dir.mkdir()
    marker = tmp_path / "compiling"
    nap = f"sleep 300.{os.getpid()}"  # a command line no other process on the machine has
    slow = bin_dir / "slow-arm-linux-gnueabihf-gcc"
    slow.write_text(f'#!/bin/sh\ncase "$1" in -dump*) exec arm-linux-gnueabihf-gcc "$@";; esac\n'
                    f'touch {marker}\nexec {nap}\n')
    slow.chmod(0o755)
    proc = subprocess.Popen([*BBV, "build", "vexpress",
                             "--cross-compile", f"{bin_dir}/slow-arm-linux-gnueabihf-"],
                            cwd=tree, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if marker.exists():
            break
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read())
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    left = subprocess.run(["pgrep", "-f", f"{nap}|{tree}"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout
    # The lock was released: the next build (with a working compiler) runs.
    assert bbv("build", "vexpress", cwd=tree).returncode == 0
