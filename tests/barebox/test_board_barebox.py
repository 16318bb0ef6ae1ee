"""The board options against a real barebox: BBV_BAREBOX_IMAGE is a vexpress barebox-dt-2nd.img
(multi_v7_defconfig, e.g. from `bbv build vexpress` or `bbv build virt`); the flash tests use
barebox-qemu-virt.img, which the same build leaves beside it. Skipped without them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import bbv, need

IMAGE = os.environ.get("BBV_BAREBOX_IMAGE", "")
VIRT_IMAGE = Path(IMAGE).with_name("barebox-qemu-virt.img") if IMAGE else None
pytestmark = [
    pytest.mark.barebox, pytest.mark.qemu, need("qemu-system-arm"),
    pytest.mark.skipif(not IMAGE, reason="needs BBV_BAREBOX_IMAGE (vexpress barebox-dt-2nd.img)"),
]
needs_virt = pytest.mark.skipif(VIRT_IMAGE is None or not VIRT_IMAGE.is_file(),
                                reason="no barebox-qemu-virt.img beside BBV_BAREBOX_IMAGE")


def bbv_run(*args: str) -> subprocess.CompletedProcess:
    return bbv("run", *args, "--timeout", "60", timeout=180)


def test_bootargs_reach_barebox_as_chosen_bootargs():
    result = bbv_run("-t", "vexpress", "--image", IMAGE, "--bootarg", "foo=bar", "--bootarg",
                     "barebox.security.policy=devel", "--exec", "of_dump /chosen", "--expect",
                     'bootargs = "foo=bar barebox.security.policy=devel";')
    assert result.returncode == 0, result.stdout + result.stderr


@needs_virt
def test_saveenv_and_state_survive_a_restart_with_flash(tmp_path):
    flash = str(tmp_path / "flash.img")
    first = bbv_run("-t", "virt", "--image", str(VIRT_IMAGE), "--flash", flash,
                    "--exec", "nv x=1", "--exec", "saveenv",
                    "--exec", "state.bootstate.system0.remaining_attempts=1", "--exec", "state -s")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "saving environment to /dev/nor0.barebox-environment" in first.stdout
    second = bbv_run("-t", "virt", "--flash", flash, "--exec",
                     "echo nv=${nv.x} state=${state.bootstate.system0.remaining_attempts}",
                     "--expect", "^nv=1 state=1$")
    assert second.returncode == 0, second.stdout + second.stderr
    without = bbv_run("-t", "virt", "--image", str(VIRT_IMAGE), "--exec", "echo x=${nv.x}",
                      "--expect", "^x=$")
    assert without.returncode == 0, without.stdout + without.stderr
