"""Each target's labgrid_env is the file of barebox's test suite (test/<arch>/*.yaml) that boots
the same way: the same QEMU machine, CPU, image and load (-kernel or -bios), read from the real
tree (BBV_BAREBOX_SRC)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from barebox_virtio_cli.targets.catalog import load_catalog

SRC = os.environ.get("BBV_BAREBOX_SRC")
pytestmark = [
    pytest.mark.barebox,
    pytest.mark.skipif(not SRC, reason="BBV_BAREBOX_SRC (a barebox source tree) not set"),
]


def qemu_driver(text: str) -> dict[str, str]:
    """machine, cpu, kernel/bios of a labgrid env's QEMUDriver (lines like `machine: virt`)."""
    return dict(re.findall(r"^\s+(machine|cpu|kernel|bios): (\S+)\s*$", text, re.M))


@pytest.mark.parametrize("name", load_catalog().names())
def test_labgrid_env_boots_like_the_target(name):
    target = load_catalog().targets[name]
    env = Path(SRC) / target.labgrid_env
    assert target.labgrid_env and env.is_file() and not env.is_symlink(), env
    driver = qemu_driver(env.read_text())
    assert driver["machine"] == target.machine
    assert driver[target.load] == target.image
    assert any(env.name.endswith(f"{d}.yaml") for d in target.defconfigs)
    if driver["cpu"] != target.cpu:  # said in the target's line of `bbv targets`
        assert f"{driver['cpu']} CPU" in target.description, (driver, target.description)
