"""bbv test --ci --full on the miniature tree (its own workflow), real make and QEMU: --full's
fragment is one more set of fragments after CI's, in a build directory of its own, so CI's
exact build stays as CI makes it. --full on targets: tests/integration/test_testsuite.py."""

from __future__ import annotations

import json

import pytest
from conftest import bbv, need
from process_helpers import CROSS
from suite_helpers import make_tree

tools = need("make", "qemu-system-arm", f"{CROSS}gcc", f"{CROSS}as", f"{CROSS}objcopy")


@tools
@pytest.mark.qemu
def test_ci_full_merges_the_fragment_after_cis_own_in_a_build_of_its_own(tmp_path):
    tree = make_tree(tmp_path)
    out = tmp_path / "out"
    done = bbv("test", "--ci", "multi_v7_defconfig", "--full", "--src", str(tree), "-O",
               str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert "bbv: --full: CONFIG_CMD_BTHREAD is not in this tree's Kconfig: dropped (bthread)" \
        in done.stderr.splitlines()
    assert [p.name for p in out.iterdir()] == ["build-arm-multi_v7_defconfig-full"]
    build = out / "build-arm-multi_v7_defconfig-full"
    record = json.loads((build / "bbv-build.json").read_text())
    ci = [f"common/boards/configs/{f}.config" for f in (
        "enable_self_test", "disable_target_tools", "enable_dm_testing", "enable_tlv_sig_testing")]
    assert record["kconfig"][:4] == ci  # CI's first, as the workflow has them
    assert "CONFIG_CMD_NVMEM=y" in record["kconfig"]
    config = (build / ".config").read_text().splitlines()
    for option in ("CONFIG_SELFTEST=y", "CONFIG_DM_TEST=y", "CONFIG_CMD_NVMEM=y",
                   "CONFIG_NVMEM_RMEM=y", "CONFIG_CMD_FBTEST=y"):
        assert option in config, option
    v7 = next(r for r in json.loads(done.stdout) if r["env"] == "dt-2nd@multi_v7_defconfig")
    assert v7["passed"] > 0 and v7["failed"] == 0
    # --no-build finds the --full build, and says what a build lacks
    again = bbv("test", "--ci", "multi_v7_defconfig", "--full", "--no-build", "--src",
                str(tree), "-O", str(out), "-k", "true")
    assert again.returncode == 0, again.stderr
