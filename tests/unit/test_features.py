"""The labgrid features `bbv export labgrid` declares: the union of barebox's own test/<arch>/*.yaml
for the same defconfig and QEMU machine (copies of a few of barebox's files in
tests/fixtures/barebox-test-yaml), the target file's `features` as fallback, and bbv's option
groups left out where barebox's conftest adds them itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TESTS

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.export import features as ft
from barebox_virtio_cli.export import jobs
from barebox_virtio_cli.export.jobs import labgrid_env
from barebox_virtio_cli.qemu.args import RunSpec
from barebox_virtio_cli.targets.catalog import load_catalog, parse_target

pytestmark = pytest.mark.pure
YAMLS = TESTS / "fixtures" / "barebox-test-yaml"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A source tree whose test/ holds the copies of barebox's files."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(YAMLS, src / "test")
    (src / "test" / "strategy.py").write_text("")
    return src


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def declared(catalog, tree, name: str, defconfig: str) -> list[str]:
    target = catalog.get(name)
    envs = ft.matching(ft.tree_envs(tree), defconfig, target.qemu, target.machine)
    return ft.union(target, envs)


def test_barebox_files_parse_with_their_template_tags(tree):
    env = ft.parse_env(YAMLS / "arm" / "dt-2nd@multi_v7_defconfig.yaml",
                       (YAMLS / "arm" / "dt-2nd@multi_v7_defconfig.yaml").read_text())
    assert env is not None
    assert (env.defconfig, env.qemu_bin, env.machine, env.image) == \
        ("multi_v7_defconfig", "qemu-system-arm", "virt", "barebox-dt-2nd.img")
    assert env.features == ["virtio-mmio", "barebox-state", "testfs"]
    assert len(ft.tree_envs(tree)) == len(list(YAMLS.glob("*/*.yaml")))


@pytest.mark.parametrize(("name", "defconfig", "expected"), [
    ("vexpress", "multi_v7_defconfig", ["virtio-mmio", "barebox-state", "testfs"]),
    # the union of dt-2nd@multi_v8 and multi_v8 (network is in both, testfs too)
    ("armv8", "multi_v8_defconfig", ["virtio-mmio", "network", "barebox-state", "testfs"]),
    ("malta", "qemu-malta_defconfig", ["virtio-pci", "testfs"]),
    ("riscv64", "rv64i_defconfig", ["virtio-mmio", "barebox-state", "testfs"]),
    # barebox's efi_defconfig.yaml declares no transport; bbv's is virtio-pci
    ("x86-efi", "efi_defconfig", ["virtio-pci", "pci"]),
])
def test_union_of_barebox_files_for_the_same_defconfig_and_machine(catalog, tree, name,
                                                                   defconfig, expected):
    assert declared(catalog, tree, name, defconfig) == expected


def test_other_machines_do_not_count(catalog, tree):
    a15 = [e for e in ft.tree_envs(tree) if e.path.name.startswith("a15@")]
    assert a15 and a15[0].machine == "vexpress-a15"
    target = catalog.get("vexpress")
    assert a15[0] not in ft.matching(ft.tree_envs(tree), "multi_v7_defconfig", target.qemu,
                                     target.machine)


def test_features_bbv_cannot_provide_are_dropped_and_named(catalog, tree):
    target = catalog.get("armv8")
    envs = ft.matching(ft.tree_envs(tree), "multi_v8_efiloader_defconfig", target.qemu,
                       target.machine)
    assert ft.union(target, envs) == ["virtio-mmio", "testfs"]
    assert ft.dropped(target, envs) == ["smbios", "bootable", "efi"]


def test_target_file_is_the_fallback(catalog, tmp_path):
    target = catalog.get("armv8")
    assert ft.union(target, []) == ["virtio-mmio", "network", "barebox-state", "testfs"]
    image = tmp_path / "barebox-dt-2nd.img"
    image.write_bytes(b"")
    got = ft.for_env(target, tmp_path, image, target.qemu, target.machine)
    assert got.features == ["virtio-mmio", *target.features]
    assert "target file armv8.toml" in got.source


def test_for_env_takes_the_defconfig_from_the_build_record(catalog, tree, tmp_path):
    build = tmp_path / "build"
    (build / "images").mkdir(parents=True)
    (build / "bbv-build.json").write_text('{"defconfig": "multi_v8_defconfig"}')
    image = build / "images" / "barebox-dt-2nd.img"
    image.write_bytes(b"")
    target = catalog.get("armv8")
    got = ft.for_env(target, tree, image, target.qemu, target.machine)
    assert got.features == ["virtio-mmio", "network", "barebox-state", "testfs"]
    assert "test/arm/dt-2nd@multi_v8_defconfig.yaml" in got.source


def test_devices_come_from_files_for_the_same_image(tree):
    envs = ft.tree_envs(tree)
    assert ft.devices(envs, "barebox.efi")["fb0"] == "Type: primary"
    assert ft.devices(envs, "barebox-dt-2nd.img") == {}


def test_unknown_feature_in_a_target_file_is_refused(catalog):
    data = {k: v for k, v in vars(catalog.get("vexpress")).items() if k not in ("name", "path")}
    with pytest.raises(BbvError, match="field 'features' has unknown features \\['wifi'\\]"):
        parse_target(Path("x.toml"), {**data, "features": ["wifi"]})
    with pytest.raises(BbvError, match="unknown features"):  # transports follow `transport`
        parse_target(Path("x.toml"), {**data, "features": ["virtio-mmio"]})


GROUPS = [["qemu-system-arm"], ["-M", "virt"], ["-display", "none"],
          ["-global", "virtio-mmio.force-legacy=false"],
          ["-device", "virtio-rng-device,id=rng0,bus=virtio-mmio-bus.0"]]


def test_conftest_owned_groups_are_left_out_only_with_barebox_strategy(catalog, tmp_path):
    target = catalog.get("vexpress")
    spec = RunSpec(image=tmp_path / "barebox-dt-2nd.img")
    with_strategy = labgrid_env(target, spec, GROUPS, "/usr/bin/qemu-system-arm",
                                tmp_path / "strategy.py", ["virtio-mmio", "testfs"],
                                {"virtioblk0": "Driver: virtio_blk"})
    main = with_strategy["targets"]["main"]
    assert main["drivers"]["QEMUDriver"]["extra_args"] == \
        "-device virtio-rng-device,id=bbvrng0,bus=virtio-mmio-bus.0"
    assert main["features"] == ["virtio-mmio", "testfs"]
    assert main["devices"] == {"virtioblk0": "Driver: virtio_blk"}
    plain = labgrid_env(target, spec, GROUPS, "/usr/bin/qemu-system-arm", None)
    assert "force-legacy=false" in plain["targets"]["main"]["drivers"]["QEMUDriver"]["extra_args"]
    assert "features" not in plain["targets"]["main"]


def test_force_legacy_stays_without_the_virtio_mmio_feature():
    group = ["-global", "virtio-mmio.force-legacy=false"]
    assert jobs.conftest_owned(group, ["virtio-mmio"])
    assert not jobs.conftest_owned(group, ["virtio-pci"])
    assert not jobs.conftest_owned(["-device", "virtio-rng-device"], ["virtio-mmio"])
