"""bbv test --full on a real barebox tree (BBV_BAREBOX_SRC): configs/suite/full.toml answers
every skip condition of the tree's suite (or says why not), the tree's Kconfig defines all it
asks for, and on vexpress the tests --full gives back run and pass (the build takes minutes;
it goes into SRC/build-vexpress-full, so point BBV_BAREBOX_SRC at a tree of your own)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import bbv

from barebox_virtio_cli.build.kbuild import defined_symbols
from barebox_virtio_cli.testsuite.full import asked_for, full_build, suite_symbols
from barebox_virtio_cli.testsuite.request import load_full

pytestmark = [pytest.mark.barebox,
              pytest.mark.skipif(not os.environ.get("BBV_BAREBOX_SRC"),
                                 reason="BBV_BAREBOX_SRC not set")]


def src() -> Path:
    return Path(os.environ["BBV_BAREBOX_SRC"])


def _text(path: str) -> str:
    try:
        return (src() / path).read_text()
    except OSError:
        return ""


def test_full_answers_every_skip_condition_of_the_trees_suite():
    full = load_full()
    given = asked_for(full, _text)
    unanswered = {}
    for path in sorted((src() / "test" / "py").glob("test_*.py")):
        rel = str(path.relative_to(src()))
        missing = suite_symbols(path.read_text()) - given
        if missing and rel not in full.left_out:
            unanswered[rel] = sorted(missing)
    assert unanswered == {}
    assert asked_for(full, _text) >= {"CONFIG_CMD_NVMEM", "CONFIG_NVMEM_RMEM",
                                      "CONFIG_CMD_BTHREAD", "CONFIG_CMD_SELFTEST"}


def test_the_trees_kconfig_defines_all_full_asks_for():
    merged = full_build(load_full(), defined_symbols(src()), lambda p: (src() / p).is_file())
    assert merged.notes == []
    assert "common/boards/configs/enable_self_test.config" in merged.kconfig


@pytest.mark.qemu
def test_full_on_vexpress_runs_what_ci_skips():
    # not test_bthread: on a loaded host barebox's poller warning lands in the output it parses
    # (docs/testing.md)
    done = bbv("test", "vexpress", "--src", str(src()), "--full", "--json", "-k",
               "nvmem or bselftest or fbtest or network or dm_verity", timeout=3600)
    [result] = json.loads(done.stdout)
    outcomes = {t["name"].rpartition("::")[2].partition("[")[0]: t["outcome"]
                for t in result["tests"]}
    assert done.returncode == 0, (done.stderr, outcomes)
    assert sum(name.startswith("test_nvmem_") for name in outcomes) == 20
    assert set(outcomes.values()) == {"passed"}
    for name in ("test_bselftest", "test_dm_verity", "test_fb_solid_color",
                 "test_barebox_network_mock_tftp", "test_barebox_network_real_tftp"):
        assert outcomes.get(name) == "passed", name
