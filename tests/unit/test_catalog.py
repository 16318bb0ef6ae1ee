import os
from pathlib import Path

import pytest
from conftest import ROOT

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import load_catalog, load_file

pytestmark = pytest.mark.pure

REQUIRED_TARGETS = {"vexpress", "armv8", "malta", "maltael", "riscv64", "riscv32", "x86-efi"}

GOOD = """
description = "test"
arch = "arm"
arch_names = ["armtest"]
bits = 32
defconfigs = ["a_defconfig"]
image = "barebox-dt-2nd.img"
load = "kernel"
qemu = "qemu-system-arm"
qemu_package = "qemu-system-arm"
machine = "virt"
cpu = "cortex-a7"
memory = "256M"
transport = "mmio"
mmio_transports = 32
fw_cfg = true
console = "cs1"
console_active = false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_builtin_catalog_has_the_required_targets():
    catalog = load_catalog([ROOT / "configs"])
    assert set(catalog.names()) >= REQUIRED_TARGETS


def test_builtin_values_match_the_facts_sheet():
    catalog = load_catalog([ROOT / "configs"])
    vexpress = catalog.get("vexpress")
    assert vexpress.defconfigs == ["vexpress_defconfig", "multi_v7_defconfig"]
    assert (vexpress.image, vexpress.load, vexpress.transport) == ("barebox-dt-2nd.img",
                                                                   "kernel", "mmio")
    armv8 = catalog.get("armv8")
    assert (armv8.arch, armv8.qemu, armv8.machine, armv8.cpu) == (
        "arm", "qemu-system-aarch64", "virt,highmem=off", "cortex-a57")
    malta = catalog.get("malta")
    assert (malta.load, malta.transport, malta.fw_cfg) == ("bios", "pci", False)
    assert catalog.get("maltael").image == "barebox-qemu-malta.img.swapped"
    assert catalog.get("riscv64").mmio_transports == 8
    assert catalog.get("x86-efi").firmware_package == "ovmf"


@pytest.mark.parametrize("arch,target", [("arm", "vexpress"), ("mips", "malta"),
                                         ("arm64", "armv8"), ("riscv", "riscv64"),
                                         ("mipsel", "maltael"), ("x86_64", "x86-efi")])
def test_arch_picks_its_default_target(arch, target):
    assert load_catalog([ROOT / "configs"]).resolve(None, arch).name == target


def test_unknown_target_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean 'vexpress'"):
        load_catalog([ROOT / "configs"]).get("vexpres")


def test_unknown_arch_lists_known_ones():
    with pytest.raises(UsageError, match=r"unknown arch 'mipz'.*'mips'"):
        load_catalog([ROOT / "configs"]).resolve(None, "mipz")


def test_target_and_arch_must_agree():
    with pytest.raises(UsageError, match=r"^--target vexpress is not a target of arch 'mips' "
                       r"\(its arch is 'arm'\); give one of the two$"):
        load_catalog([ROOT / "configs"]).resolve("vexpress", "mips")


def test_a_valid_file_loads(tmp_path):
    target = load_file(write(tmp_path, "mine", GOOD))
    assert (target.name, target.mmio_transports, target.devices[0]) == ("mine", 32, "blk")


@pytest.mark.parametrize("change,message", [
    (("cpu = \"cortex-a7\"", "cpuu = \"x\""), "unknown field 'cpuu' \\(did you mean 'cpu'\\?\\)"),
    (("memory = \"256M\"\n", ""), "missing required field 'memory'"),
    (("bits = 32", "bits = \"32\""), "field 'bits' must be an integer"),
    (("bits = 32", "bits = 16"), "field 'bits' must be one of"),
    (("load = \"kernel\"", "load = \"tftp\""), "field 'load' must be one of"),
    (("fw_cfg = true", "fw_cfg = 1"), "field 'fw_cfg' must be true or false"),
    (("arch_names = [\"armtest\"]", "arch_names = [1]"), "'arch_names' must be a list of str"),
    (("mmio_transports = 32", "mmio_transports = 0"), "'mmio_transports' must be set"),
    (("arch = \"arm\"", "arch = \"arm\"\ndevices = [\"floppy\"]"), "unknown kinds \\['floppy'\\]"),
    (("description", "descr iption"), "not valid TOML"),
])
def test_invalid_files_name_file_and_field(tmp_path, change, message):
    path = write(tmp_path, "broken", GOOD.replace(*change))
    with pytest.raises(BbvError, match=message) as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_user_targets_add_and_override(tmp_path):
    write(tmp_path, "vexpress", GOOD.replace("cortex-a7", "cortex-a15"))
    catalog = load_catalog([ROOT / "configs", tmp_path])
    assert catalog.get("vexpress").cpu == "cortex-a15"
    assert catalog.resolve(None, "armtest").name == "vexpress"


def test_two_targets_may_not_claim_one_arch_name(tmp_path):
    write(tmp_path, "other", GOOD.replace("armtest", "mips"))
    with pytest.raises(BbvError, match="arch name 'mips' is already the default"):
        load_catalog([ROOT / "configs", tmp_path])


def test_catalog_cache_follows_the_files(tmp_path):
    path = write(tmp_path, "mine", GOOD)
    assert load_catalog([tmp_path]).get("mine").cpu == "cortex-a7"
    stamp = path.stat()
    broken = "not toml at all".ljust(len(GOOD), "#")
    path.write_text(broken)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert load_catalog([tmp_path]).get("mine").cpu == "cortex-a7"  # same stamp: the cache
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    with pytest.raises(BbvError, match="not valid TOML"):
        load_catalog([tmp_path])  # changed: parsed and validated again
    path.write_text(GOOD.replace("cortex-a7", "cortex-a15"))
    assert load_catalog([tmp_path]).get("mine").cpu == "cortex-a15"


def test_every_builtin_target_says_why_and_names_its_labgrid_env():
    for target in load_catalog().targets.values():
        arch_dir = {"arm": "arm", "mips": "mips", "riscv": "riscv", "x86": "x86"}[target.arch]
        assert target.labgrid_env.startswith(f"test/{arch_dir}/"), target.name
        assert any(target.labgrid_env.endswith(f"{d}.yaml") for d in target.defconfigs)
        assert target.description and "\n" not in target.description


def test_vexpress_keeps_its_meaning():
    """The seed's vexpress: ARMv7 dt-2nd image as -kernel on QEMU virt, not vexpress-a9."""
    vexpress = load_catalog().targets["vexpress"]
    assert (vexpress.machine, vexpress.cpu, vexpress.image, vexpress.load) == \
        ("virt", "cortex-a7", "barebox-dt-2nd.img", "kernel")
    assert "arm" in vexpress.arch_names and "not QEMU's vexpress-a9" in vexpress.description
