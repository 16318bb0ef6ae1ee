"""bbv test --full's pure logic (configs/suite/full.toml): the fragment for a tree, checked
against its Kconfig (the miniature tree's), what each target carries, and the CONFIG_ symbols
the suite's skip conditions name."""

from __future__ import annotations

import tomllib

import pytest
from conftest import ROOT

from barebox_virtio_cli.build.kbuild import defined_symbols
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets.catalog import load_catalog
from barebox_virtio_cli.testsuite.full import (
    asked_for,
    for_arch,
    full_build,
    full_env,
    parse_full,
    suite_symbols,
)

pytestmark = pytest.mark.pure

MINI = ROOT / "tests" / "fixtures" / "minibarebox"
TABLE = ROOT / "configs" / "suite" / "full.toml"


def shipped():
    return parse_full(tomllib.loads(TABLE.read_text()), str(TABLE))


def test_the_shipped_groups_parse_and_each_test_file_is_answered_or_left_out_once():
    full = shipped()
    answered = [t for g in full.groups for t in g.tests]
    assert len(answered) == len(set(answered))
    assert not set(answered) & set(full.left_out)
    assert "test/py/test_nvmem.py" in answered and "test/py/test_module.py" in full.left_out
    assert all(why for why in full.left_out.values())


@pytest.mark.parametrize("group, says", [
    ({"tests": ["t.py"]}, "needs a name and tests"),
    ({"name": "x"}, "needs a name and tests"),
    ({"name": "x", "tests": ["t.py"], "kconfig": ["NVMEM=y"]}, "CONFIG_X=VALUE, not 'NVMEM=y'"),
    ({"name": "x", "tests": ["t.py"], "devices": ["vga"]}, "unknown device 'vga'"),
    ({"name": "x", "tests": ["t.py"], "env": ["nv/x"]}, "env entries are PATH=VALUE"),
])
def test_a_malformed_group_is_one_error_naming_the_file(group, says):
    with pytest.raises(BbvError, match=says) as caught:
        parse_full({"group": [group]}, "full.toml")
    assert str(caught.value).startswith("full.toml: group 1 (")


def test_on_the_miniature_tree_what_its_kconfig_lacks_is_dropped_with_a_note():
    merged = full_build(shipped(), defined_symbols(MINI), lambda p: (MINI / p).is_file())
    assert merged.kconfig[:3] == [f"common/boards/configs/{name}.config" for name in
                                  ("enable_self_test", "enable_dm_testing",
                                   "enable_tlv_sig_testing")]
    assert {"CONFIG_CMD_NVMEM=y", "CONFIG_NVMEM_RMEM=y", "CONFIG_CMD_SELFTEST=y",
            "CONFIG_CMD_FBTEST=y", "CONFIG_NET=y", "CONFIG_CMD_TFTP=y"} <= set(merged.kconfig)
    assert not any(o.startswith(("CONFIG_BTHREAD=", "CONFIG_CMD_BTHREAD=", "CONFIG_CMD_MD="))
                   for o in merged.kconfig[1:])
    assert "CONFIG_BTHREAD is not in this tree's Kconfig: dropped (bthread)" in merged.notes
    assert "CONFIG_CMD_BTHREAD is not in this tree's Kconfig: dropped (bthread)" in merged.notes
    assert not any("not in this tree:" in note for note in merged.notes)
    assert len(merged.notes) == len(set(merged.notes))
    older = full_build(shipped(), defined_symbols(MINI),
                       lambda p: p != "common/boards/configs/enable_dm_testing.config")
    assert "common/boards/configs/enable_dm_testing.config" not in older.kconfig
    assert "common/boards/configs/enable_dm_testing.config is not in this tree: not merged " \
           "(dm-verity)" in older.notes


def test_a_tree_with_everything_gets_every_fragment_and_option_in_order_without_notes():
    full = parse_full({"group": [
        {"name": "a", "tests": ["a.py"], "fragments": ["f.config"], "kconfig": ["CONFIG_A=y"]},
        {"name": "b", "tests": ["b.py"], "kconfig": ["CONFIG_A=y", "CONFIG_B=m"]}]}, "t")
    merged = full_build(full, {"A", "B"}, lambda _path: True)
    assert merged.kconfig == ["f.config", "CONFIG_A=y", "CONFIG_B=m"]
    assert merged.notes == []


def test_a_target_gets_the_features_and_devices_it_carries_and_a_note_for_the_rest():
    full = shipped()
    both = full_env(full, ["network", "framebuffer"], "vexpress")
    assert both.features == ["network"] and both.devices == ["framebuffer"]
    assert both.env == ["nv/dev.fb0.enable=1"]  # ramfb shows nothing until fb0 is enabled
    assert both.notes == []
    none = full_env(full, [], "malta")
    assert none.features == [] and none.devices == [] and none.env == []
    assert none.notes == [
        "malta: no framebuffer for test/py/test_fbtest.py (not checked on this target)",
        "malta: no network for test/py/test_network.py (not checked on this target)"]


def test_the_catalog_says_which_targets_carry_what():
    catalog = load_catalog()
    assert catalog.get("vexpress").full_extras == ["network", "framebuffer"]
    assert catalog.get("vexpress").full_machine == "virt,highmem=off"
    for target in catalog.targets.values():
        if "framebuffer" in target.full_extras:
            assert target.graphic, target.name


SUITE_TEXT = '''
ESSENTIAL_CONFIGS = [
    "CONFIG_CMD_NVMEM",       # For the 'nvmem' command itself
    "CONFIG_FS_DEVFS"
]

def test_a(barebox, barebox_config):
    skip_disabled(barebox_config, "CONFIG_CMD_READLINK", "CONFIG_CMD_MKDIR")
    skip_disabled(barebox_config,
                  "CONFIG_CRYPTO_RSA")

def test_b(barebox):
    barebox.run("echo CONFIG_NOT_A_SKIP")
'''


def test_the_symbols_of_the_skip_conditions_are_read_from_the_suites_source():
    assert suite_symbols(SUITE_TEXT) == {"CONFIG_CMD_NVMEM", "CONFIG_FS_DEVFS",
                                         "CONFIG_CMD_READLINK", "CONFIG_CMD_MKDIR",
                                         "CONFIG_CRYPTO_RSA"}


def test_what_full_asks_for_includes_the_trees_fragments():
    full = parse_full({"group": [{"name": "a", "tests": ["a.py"], "fragments": ["f.config"],
                                  "kconfig": ["CONFIG_A=y", "CONFIG_OFF=n"]}]}, "t")
    text = {"f.config": "CONFIG_F=y\n# CONFIG_G is not set\nCONFIG_H=n\n"}
    assert asked_for(full, lambda p: text.get(p, "")) == {"CONFIG_A", "CONFIG_F"}


def test_an_option_that_does_not_build_for_an_arch_is_dropped_for_its_targets_only():
    full = shipped()
    kconfig = ["common/boards/configs/enable_self_test.config", "CONFIG_CMD_NVMEM=y",
               "CONFIG_NVMEM_RMEM=y"]
    kept, notes = for_arch(full, kconfig, "mips")
    assert kept == kconfig[:2]
    assert len(notes) == 1 and notes[0].startswith(
        "CONFIG_NVMEM_RMEM dropped for ARCH=mips: drivers/nvmem/rmem.c calls find_next_bit()")
    assert for_arch(full, kconfig, "arm") == (kconfig, [])
    with pytest.raises(BbvError, match="broken 1: needs option, arch and why"):
        parse_full({"broken": [{"option": "CONFIG_X", "arch": "mips"}]}, "full.toml")
