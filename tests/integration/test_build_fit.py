"""Issue 22, row 1: a defconfig, fragment or compiler that does not fit the target, or a build
directory of another ARCH, is refused before the first write; a build directory whose .config
and record disagree is reported with the command that repairs it. On the miniature tree with
real make and cross compilers (and on real barebox with $BBV_BAREBOX_SRC)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, bbv, error_line, need, snapshot

MINI = ROOT / "tests" / "fixtures" / "minibarebox"
RISCV = "riscv64-linux-gnu-"


@pytest.fixture
def mini(tmp_path) -> Path:
    """The miniature tree with per-arch Kconfig files (symbols only one arch defines) and a
    32-bit RISC-V defconfig."""
    tree = tmp_path / "barebox"
    shutil.copytree(MINI, tree)
    (tree / "arch" / "arm" / "Kconfig").write_text("config ARM\nconfig CPU_V7\n")
    (tree / "arch" / "riscv" / "Kconfig").write_text("config RISCV\n\tmenuconfig ARCH_RV64I\n")
    (tree / "arch" / "riscv" / "configs" / "virt32_defconfig").write_text(
        'CONFIG_IMAGE="barebox-dt-2nd.img"\n')
    return tree


@pytest.fixture
def riscv_built(mini) -> Path:
    if shutil.which(f"{RISCV}gcc") is None or shutil.which("make") is None:
        pytest.skip(f"not installed: {RISCV}gcc or make")
    done = bbv("build", "riscv64", "--src", str(mini), "--no-ccache")
    assert done.returncode == 0, done.stderr
    return mini / "build-riscv64"


def test_defconfig_of_another_arch_is_refused_before_any_write(mini, riscv_built):
    before = snapshot(riscv_built)
    done = bbv("build", "riscv64", "--src", str(mini), "--defconfig", "multi_v7_defconfig")
    error_line(done, 2, "multi_v7_defconfig is an ARCH=arm defconfig", "ARCH=riscv",
               "vexpress")
    assert snapshot(riscv_built) == before


def test_defconfig_of_other_bitness_is_refused(mini):
    done = bbv("build", "riscv64", "--src", str(mini), "--defconfig", "virt32_defconfig")
    error_line(done, 2, "virt32_defconfig is 32-bit", "riscv32")
    assert not (mini / "build-riscv64").exists()


@pytest.mark.parametrize("fragment", ["CONFIG_CPU_V7=y", "arch/arm/configs/multi_v7_defconfig"])
def test_fragment_of_another_arch_is_refused(mini, fragment):
    done = bbv("build", "riscv64", "--src", str(mini), "--kconfig-add", fragment, cwd=mini)
    error_line(done, 2, "--kconfig-add", "ARCH=riscv")
    assert not (mini / "build-riscv64").exists()


def test_fragment_of_the_targets_arch_is_taken(mini):
    """The check reads the tree's Kconfig files: the arch's own symbols pass it."""
    from barebox_virtio_cli.build.kbuild import foreign_symbols

    got = foreign_symbols(mini, "riscv", {"CONFIG_ARCH_RV64I": "y", "CONFIG_CPU_V7": "n",
                                          "CONFIG_VIRTIO": "y", "CONFIG_ARM": "y"})
    assert got == {"CONFIG_ARM": "arm"}


@need("arm-linux-gnueabihf-gcc")
def test_compiler_of_another_arch_is_refused(mini):
    done = bbv("build", "riscv64", "--src", str(mini), "--cross-compile",
               "arm-linux-gnueabihf-")
    error_line(done, 1, "arm-linux-gnueabihf", "riscv64")
    assert not (mini / "build-riscv64").exists()


def test_build_dir_of_another_arch_is_refused(mini, riscv_built):
    before = snapshot(riscv_built)
    done = bbv("build", "vexpress", "--src", str(mini), "-O", str(riscv_built))
    error_line(done, 2, "holds an ARCH=riscv build (riscv64, rv64i_defconfig)", "--clean")
    assert snapshot(riscv_built) == before


def test_config_and_record_that_disagree_name_the_repair(mini, riscv_built):
    """The state an ARM defconfig left in a riscv64 directory before this check existed: the
    next build (and `bbv run --build`) says so and how to repair it; the repair works."""
    config = riscv_built / ".config"
    config.write_text("#\n# Barebox/arm 2026.06.0 Configuration\n#\nCONFIG_ARM=y\n"
                      + config.read_text())
    before = snapshot(riscv_built)
    repair = (f"bbv build riscv64 --src {mini} -O {riscv_built} --clean")
    for args in (["build", "riscv64", "--src", str(mini)],
                 ["run", "-t", "riscv64", "--build", "-O", str(riscv_built), "--dry-run"]):
        done = bbv(*args, cwd=mini)
        error_line(done, 1, ".config is ARCH=arm", "records ARCH=riscv", repair)
        assert snapshot(riscv_built) == before
    done = bbv(*repair.split()[1:])
    assert done.returncode == 0, done.stderr
    assert "Barebox/arm" not in config.read_text()


@pytest.mark.skipif(not os.environ.get("BBV_BAREBOX_SRC"), reason="BBV_BAREBOX_SRC not set")
def test_real_tree_refuses_an_arm_defconfig_for_riscv(tmp_path):
    src = os.environ["BBV_BAREBOX_SRC"]
    done = bbv("build", "riscv64", "--src", src, "--defconfig", "multi_v7_defconfig", "-O",
               str(tmp_path / "out"))
    error_line(done, 2, "ARCH=arm defconfig")
    done = bbv("build", "riscv64", "--src", src, "--kconfig-add", "CONFIG_CPU_V7=y", "-O",
               str(tmp_path / "out"))
    error_line(done, 2, "CONFIG_CPU_V7 (ARCH=arm)")
    assert not (tmp_path / "out").exists()


