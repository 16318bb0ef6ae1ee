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
    assert result["failed"] == 0 and result["passed"] >= 5
    assert all(t["name"].startswith("test/py/test_shell") for t in result["tests"])
