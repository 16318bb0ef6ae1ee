"""How bbv is installed in this Python, for tests/run.sh: "not installed", "installed editable
(from DIR)" or "installed from a copy (kept; ...)"; with --extras, the test extras' requirements
from pyproject.toml, one per argument."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = "installed from a copy (kept; testing this tree through PYTHONPATH)"


def kind() -> str:
    try:
        dist = importlib.metadata.distribution("bbv")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    if url.get("dir_info", {}).get("editable"):
        return f"installed editable (from {url.get('url', '?').removeprefix('file://')})"
    return COPY


def extras() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]["test"]


if __name__ == "__main__":
    print(" ".join(extras()) if sys.argv[1:] == ["--extras"] else kind())
