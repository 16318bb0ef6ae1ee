"""The generated QEMU command line of every target with a full set of devices, against a
reviewed golden file. Regenerate after an intended change with BBV_UPDATE_GOLDEN=1."""

import os
from pathlib import Path

import pytest
from conftest import ROOT, TESTS
from qemu_helpers import synthetic_info

from barebox_virtio_cli.qemu.args import (
    EnvEntry,
    RunSpec,
    build_command,
    fw_cfg_usable,
    parse_port_forward,
)
from barebox_virtio_cli.targets.catalog import load_catalog

pytestmark = pytest.mark.pure

CATALOG = load_catalog([ROOT / "configs"])
GOLDEN = TESTS / "golden"


def full_spec(target) -> RunSpec:
    info = synthetic_info(target.qemu)
    return RunSpec(
        image=Path("/work/barebox/images") / target.image,
        blks=[Path("/work/disks/a.img"), Path("/work/disks/b,with-comma.img")],
        rng=2,
        console=Path("/run/user/1000/bbv/console.sock"),
        input=True,
        net=True,
        port_forwards=[parse_port_forward("tcp:8080:80")],
        fs=[("share", Path("/work/share"))],
        env=[EnvEntry("nv/boot.default", "net")] if fw_cfg_usable(target, info) else [],
        firmware=target.firmware[0] if target.firmware else None,
    )


def render(name: str) -> str:
    target = CATALOG.get(name)
    from barebox_virtio_cli.qemu.args import format_command

    return format_command(build_command(target, full_spec(target), synthetic_info(target.qemu)))


@pytest.mark.parametrize("name", CATALOG.names())
def test_command_line_matches_golden_file(name):
    golden = GOLDEN / f"{name}.sh"
    text = render(name) + "\n"
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with BBV_UPDATE_GOLDEN=1 and review"
    assert text == golden.read_text()


def test_every_golden_file_has_a_target():
    assert sorted(p.stem for p in GOLDEN.glob("*.sh")) == CATALOG.names()
    assert sorted(p.stem for p in (GOLDEN / "board").glob("*.sh")) == CATALOG.names()


def board_spec(target, info) -> RunSpec:
    """The board-debugging options each target takes: --bootarg where barebox is a -kernel
    image that reads a device tree, --dtb/--dump-dtb on DT machines, --flash where it boots
    from flash, --graphic."""
    spec = full_spec(target)
    spec.env = [EnvEntry("nv/boot.default", "net")] if fw_cfg_usable(target, info) else []
    if target.load == "kernel" and target.device_tree:
        spec.bootargs = ["barebox.security.policy=devel", "foo=bar baz"]
    if target.device_tree:
        spec.dtb = Path("/work/dt/virt,custom.dtb")
        spec.dump_dtb = Path("/work/dt/dump,ed.dtb")
    if target.pflash_mib:
        spec.flash = Path("/work/flash/virt,flash.img")
    spec.graphic = True
    spec.qmp = Path("/tmp/bbv-qmp-x/qmp")
    return spec


@pytest.mark.parametrize("name", CATALOG.names())
def test_board_options_match_golden_file(name):
    """QEMU 8.2 (ramfb needs fw_cfg, which RISC-V virt has only from QEMU 8.0)."""
    target = CATALOG.get(name)
    info = synthetic_info(target.qemu, version=(8, 2, 0))
    from barebox_virtio_cli.qemu.args import format_command

    text = format_command(build_command(target, board_spec(target, info), info)) + "\n"
    golden = GOLDEN / "board" / f"{name}.sh"
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with BBV_UPDATE_GOLDEN=1 and review"
    assert text == golden.read_text()


def render_lava_job(name: str, commands=("ls /dev", "devinfo"), expectations=()) -> str:
    """The LAVA job `bbv export lava` writes for the full device set (less --fs, which a LAVA
    worker cannot have, and a disk name with a comma, which LAVA cannot pass) and, by default,
    two --exec commands."""
    from barebox_virtio_cli.export.jobs import lava_job, to_yaml

    target = CATALOG.get(name)
    spec, info = full_spec(target), synthetic_info(target.qemu)
    spec.fs = []
    spec.blks = [Path("/work/disks/a.img"), Path("/work/disks/with space/b.img")]  # no commas
    job = lava_job(target, spec, build_command(target, spec, info), f"bbv {name}",
                   list(commands), 10, expectations=list(expectations))
    return to_yaml(job, f"LAVA job for bbv target '{name}'")


# --expect: after --exec (the commands' output), and alone (the boot log).
LAVA_EXPECT = {
    "vexpress-expect": ("vexpress", ["ls /dev", "devinfo"], ["virtioblk1", r"(?i)^ZERO$"]),
    "malta-expect-boot": ("malta", [], [r"^barebox 20\d\d", "virtio"]),
}


@pytest.mark.parametrize("golden_name", LAVA_EXPECT)
def test_lava_job_with_expectations_matches_golden_file(golden_name):
    name, commands, expectations = LAVA_EXPECT[golden_name]
    golden = GOLDEN / "lava" / f"{golden_name}.yaml"
    text = render_lava_job(name, commands, expectations)
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with BBV_UPDATE_GOLDEN=1 and review"
    assert text == golden.read_text()


@pytest.mark.parametrize("name", CATALOG.names())
def test_lava_job_matches_golden_file(name):
    golden = GOLDEN / "lava" / f"{name}.yaml"
    text = render_lava_job(name)
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with BBV_UPDATE_GOLDEN=1 and review"
    assert text == golden.read_text()
