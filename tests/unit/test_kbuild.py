"""build/kbuild.py, the pure side of `bbv build`: reading real barebox make output (captured from
bbv builds of barebox v2026.06 and from a deliberately failing build: tests/fixtures/kbuild),
and the decisions about defconfigs, build directories, images and .config outcomes, on the
miniature Kbuild tree. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from barebox_virtio_cli.build import kbuild
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import load_catalog

pytestmark = pytest.mark.pure

OUTPUT = ROOT / "tests" / "fixtures" / "kbuild"
TREE = ROOT / "tests" / "fixtures" / "minibarebox"


def lines(name: str) -> list[str]:
    return (OUTPUT / name).read_text().splitlines()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog([ROOT / "configs"])


# --- make's output ---------------------------------------------------------------------------

def test_quiet_kbuild_lines_are_steps_and_nothing_else_is():
    steps = [kbuild.step(line) for line in lines("make-ok.log")]
    found = [s for s in steps if s is not None]
    assert found == [
        ("GEN", "Makefile"),
        ("HOSTCC", "scripts/basic/fixdep"),
        ("YACC", "scripts/kconfig/parser.tab.[ch]"),
        ("CC", "common/boards/qemu/fw_cfg.o"),
        ("CC", "[P]  common/boards/phytec/phytec-som-detection.pbl.o"),
        ("AR", "[P]  common/boards/phytec/built-in.pbl.a"),
        ("LZ4", "arch/arm/dts/bcm2711-rpi-4.dtb.z"),
        ("LD", "barebox"),
        ("OBJCOPYB", "images/start_raspberry_pi_generic.pblb"),  # 8 letters, one space
        ("CHKFILESIZE", "images/start_raspberry_pi_generic.pblb"),
    ]
    # bbv's own "$ make ..." line, make's directory lines and the image list are not steps
    assert steps[0] is None and steps[1] is None and steps[-1] is None
    assert kbuild.step("barebox-hifive-unmatched.img") is None


def test_a_successful_build_has_no_error_lines():
    assert kbuild.error_lines(lines("make-ok.log")) == []


def test_compiler_error_comes_first_then_makes_failure_chain():
    found = kbuild.error_lines(lines("make-error.log"))
    assert found[0] == ("/tmp/i9-bad.h:1:38: error: \u2018undeclared_on_purpose\u2019 "
                        "undeclared (first use in this function)")
    assert not any("warning:" in line or "note:" in line for line in found)
    assert found[1].startswith("make[3]: *** [/work/bb/scripts/Makefile.build:171: "
                               "scripts/mod/empty.o] Error 1")
    assert found[-1] == "make: *** [Makefile:185: sub-make] Error 2"
    assert len(found) == 5


def test_missing_target_is_an_error_line():
    assert kbuild.error_lines(lines("make-no-rule.log"))[0] == \
        "make[1]: *** No rule to make target 'common/bbv-no-such.o'.  Stop."


def test_error_lines_are_limited():
    assert len(kbuild.error_lines(["a.c:1:1: error: x"] * 20, limit=3)) == 3


def test_make_argv():
    assert kbuild.make_argv(4, "arm", Path("/b"), "arm-linux-gnueabihf-", "olddefconfig") == \
        ["make", "-j4", "ARCH=arm", "O=/b", "CROSS_COMPILE=arm-linux-gnueabihf-",
         "olddefconfig"]
    assert kbuild.make_argv(2, "riscv", Path("/b"), "ccache x-", "images/a.img",
                            debug_info=False) == \
        ["make", "-j2", "ARCH=riscv", "O=/b", "CROSS_COMPILE=ccache x-", "CFLAGS_KERNEL=-g0",
         "images/a.img"]


# --- .config -------------------------------------------------------------------------------

def test_parse_config_reads_values_and_not_set_lines():
    text = ("#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_VIRTIO_BLK=y\n"
            '# CONFIG_VIRTIO_INPUT is not set\nCONFIG_CBSIZE=1024\nCONFIG_NAME="a b"\n')
    assert kbuild.parse_config(text) == {"CONFIG_VIRTIO_BLK": "y", "CONFIG_VIRTIO_INPUT": "n",
                                         "CONFIG_CBSIZE": "1024", "CONFIG_NAME": '"a b"'}


def test_config_outcome_names_what_did_not_stick():
    took, missed = kbuild.config_outcome(
        {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_C": "n"},
        {"CONFIG_A": "y", "CONFIG_B": "n"})
    assert took == ["CONFIG_A=y", "CONFIG_C=n"]  # unset counts as n
    assert missed == ["CONFIG_B=y (got n)"]


# --- the tree ------------------------------------------------------------------------------

def test_defconfigs_include_files_generated_ones_and_pattern_rules():
    known = kbuild.defconfigs(TREE)
    assert known["multi_v7_defconfig"] == "arm"
    assert known["rv64i_defconfig"] == "riscv"
    assert known["qemu-maltael_defconfig"] == "mips"  # a make target in arch/mips/Makefile


def test_bitness_from_the_defconfig_file():
    assert kbuild.defconfig_bits(TREE, "arm", "multi_v8_defconfig") == 64
    assert kbuild.defconfig_bits(TREE, "arm", "multi_v7_defconfig") == 32
    assert kbuild.defconfig_bits(TREE, "mips", "qemu-maltael_defconfig") is None  # generated


def test_tree_detection(tmp_path):
    assert kbuild.is_barebox_tree(TREE)
    assert not kbuild.is_barebox_tree(tmp_path)
    with pytest.raises(UsageError, match="is not a barebox source tree"):
        kbuild.check_tree(tmp_path)


def test_target_takes_its_first_defconfig_the_tree_has(catalog):
    plan = kbuild.plan(TREE, catalog, "vexpress", None, None)
    assert (plan.arch, plan.defconfig, plan.target.name) == ("arm", "multi_v7_defconfig",
                                                             "vexpress")
    assert plan.why == "vexpress_defconfig not in this tree"


def test_a_defconfig_name_finds_its_target_and_arch(catalog):
    plan = kbuild.plan(TREE, catalog, "multi_v8", None, None)
    assert (plan.arch, plan.defconfig, plan.name) == ("arm", "multi_v8_defconfig", "armv8")
    assert kbuild.plan(TREE, catalog, "rv64i_defconfig", None, None).arch == "riscv"


def test_misspelt_names_get_close_matches(catalog):
    with pytest.raises(UsageError, match=r"'vexprss' is neither .* \(close: vexpress\)"):
        kbuild.plan(TREE, catalog, "vexprss", None, None)
    with pytest.raises(UsageError, match="no defconfig 'multi_v9'.*close: multi_v"):
        kbuild.plan(TREE, catalog, None, "arm", "multi_v9")


# barebox's scripts/kconfig/Makefile (v2026.06), the lines that name Kconfig's own targets
KCONFIG_MAKEFILE = """simple-targets := oldconfig allnoconfig allyesconfig allmodconfig \\
\talldefconfig randconfig listnewconfig olddefconfig syncconfig \\
\thelpnewconfig yes2modconfig mod2yesconfig

PHONY += $(simple-targets)
"""


def test_kconfigs_whole_tree_configs_build_for_an_arch(catalog, tmp_path):
    """barebox's CI builds `ARCH=sandbox allyesconfig`: no defconfig file, Kconfig's own."""
    tree = tmp_path / "tree"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "arch" / "sandbox").mkdir(parents=True)
    (tree / "scripts" / "kconfig" / "Makefile").write_text(KCONFIG_MAKEFILE)
    assert kbuild.whole_configs(tree) == ["allnoconfig", "allyesconfig", "allmodconfig",
                                          "alldefconfig"]
    plan = kbuild.plan(tree, catalog, None, "sandbox", "allyesconfig")
    assert (plan.arch, plan.defconfig, plan.target) == ("sandbox", "allyesconfig", None)
    assert plan.why == "Kconfig's allyesconfig for ARCH=sandbox"
    with pytest.raises(UsageError, match="no defconfig 'randconfig'"):
        kbuild.plan(tree, catalog, None, "sandbox", "randconfig")  # not a whole-tree config
    with pytest.raises(UsageError, match="no defconfig 'allyesconfig'"):
        kbuild.plan(tree, catalog, None, "nosucharch", "allyesconfig")
    assert kbuild.whole_configs(TREE) == []  # the miniature tree has no Kconfig Makefile


def test_target_whose_defconfigs_the_tree_lacks(catalog):
    with pytest.raises(BbvError, match="none of target 'x86-efi''s defconfigs"):
        kbuild.plan(TREE, catalog, "x86-efi", None, None)


def test_build_dir_safety(tmp_path):
    assert kbuild.is_build_dir(tmp_path / "new", "bbv-build.json")
    assert kbuild.is_build_dir(tmp_path, "bbv-build.json")  # empty
    (tmp_path / "notes.txt").write_text("mine")
    assert not kbuild.is_build_dir(tmp_path, "bbv-build.json")
    (tmp_path / "bbv-build.json").write_text("{}")
    assert kbuild.is_build_dir(tmp_path, "bbv-build.json")
