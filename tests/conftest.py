"""Shared fixtures: every test gets private bbv dirs, so no test reads the user's cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The miniature barebox tree has a test suite of its own, run by `bbv test`, not by this one.
collect_ignore = ["fixtures"]


@pytest.fixture(autouse=True)
def bbv_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("bbvdirs")
    for name in ("CONFIG", "CACHE", "DATA", "STATE"):
        monkeypatch.setenv(f"BBV_{name}_DIR", str(base / name.lower()))
    # Sockets need short paths (107 bytes): keep the runtime dir short.
    runtime = Path(f"/tmp/bbv-t{os.getpid()}")
    monkeypatch.setenv("BBV_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("KBUILD_OUTPUT", raising=False)
    yield base
    shutil.rmtree(runtime, ignore_errors=True)


def need(*tools: str):
    """Skip unless the tools are installed (tests/run.sh installs them)."""
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")
