"""bbv's own reading of the XDG directories must agree with platformdirs."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from barebox_virtio_cli.util import paths

KINDS = ("config", "cache", "data", "state")
XDG_VARS = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")

pytestmark = [pytest.mark.pure,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG fast path")]


@pytest.mark.parametrize("setting", ["unset", "absolute", "relative", "empty"])
@pytest.mark.parametrize("kind", KINDS)
def test_user_dirs_match_platformdirs(monkeypatch, tmp_path, kind, setting):
    monkeypatch.delenv(f"BBV_{kind.upper()}_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in XDG_VARS:
        if setting == "unset":
            monkeypatch.delenv(variable, raising=False)
        else:
            value = {"absolute": str(tmp_path / variable), "relative": "rel/dir", "empty": ""}
            monkeypatch.setenv(variable, value[setting])
    expected = Path(getattr(platformdirs, f"user_{kind}_dir")("bbv"))
    assert getattr(paths, f"{kind}_dir")() == expected


def test_bbv_override_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("BBV_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "mine"
