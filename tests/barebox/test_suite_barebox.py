"""bbv test on a real barebox tree (BBV_BAREBOX_SRC): barebox's own suite on vexpress, built by
bbv into SRC/build-vexpress (the first run builds for minutes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import bbv


@pytest.mark.barebox
@pytest.mark.qemu
@pytest.mark.skipif(not os.environ.get("BBV_BAREBOX_SRC"), reason="BBV_BAREBOX_SRC not set")
def test_barebox_suite_on_vexpress():
    src = Path(os.environ["BBV_BAREBOX_SRC"])
    done = bbv("test", "vexpress", "--src", str(src), "--json", "-k", "test_shell",
               timeout=1800)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["failed"] == 0 and result["errors"] == 0 and result["passed"] >= 5
    assert all(t["name"].startswith("test/py/test_shell") for t in result["tests"])


@pytest.mark.barebox
@pytest.mark.qemu
@pytest.mark.skipif(not os.environ.get("BBV_BAREBOX_SRC"), reason="BBV_BAREBOX_SRC not set")
def test_barebox_ci_job_rv64i(tmp_path):
    """One real CI job as the tree's workflow defines it: rv64i_defconfig built once with CI's
    fragments (its yaml uses testfs), then qemu-virt64@rv64i_defconfig with barebox's yaml."""
    src = Path(os.environ["BBV_BAREBOX_SRC"])
    done = bbv("test", "--ci", "rv64i_defconfig", "--src", str(src), "--json", "-k", "test_shell",
               "--junit-dir", str(tmp_path), timeout=3600)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert (result["env"], result["defconfig"]) == ("qemu-virt64@rv64i_defconfig",
                                                    "rv64i_defconfig")
    assert result["failed"] == 0 and result["errors"] == 0 and result["passed"] >= 5
    assert (tmp_path / "qemu-virt64@rv64i_defconfig.tests.xml").is_file()
    record = json.loads((src / "build-ci-riscv-rv64i_defconfig" / "bbv-build.json").read_text())
    assert record["kconfig"] == [f"common/boards/configs/{f}.config" for f in (
        "enable_self_test", "disable_target_tools", "enable_dm_testing", "enable_tlv_sig_testing")]
