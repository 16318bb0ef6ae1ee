"""Shared fixtures and helpers: every test gets private bbv dirs, so no test reads or writes
the user's cache or config (not even at import or collection time: the environment is set
below, before any test module is imported), and one way to run the bbv command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent  # unit/, integration/, barebox/ and what they share
ROOT = TESTS.parent
BBV = [sys.executable, "-m", "barebox_virtio_cli"]

# For the whole session (collection included); the autouse fixture gives each test its own.
_SESSION_DIRS = Path(tempfile.mkdtemp(prefix="bbv-tests-"))
for _name in ("CONFIG", "CACHE", "DATA", "STATE"):
    os.environ[f"BBV_{_name}_DIR"] = str(_SESSION_DIRS / _name.lower())
for _variable in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
    os.environ[_variable] = str(_SESSION_DIRS / "xdg" / _variable.lower())


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIRS, ignore_errors=True)


def bbv(*args: str, cwd: Path | str | None = None, env: dict[str, str | None] | None = None,
        path: str | None = None, timeout: float = 300, **run) -> subprocess.CompletedProcess:
    """The bbv command as a user runs it: `python -m barebox_virtio_cli ARGS`, output captured
    (text unless text=False), stdin empty unless input= or stdin= says otherwise. env adds to
    this process's environment (None removes a variable); path replaces PATH. bbv never shows
    a traceback without --debug."""
    full = {**os.environ, **(env or {})}
    if path is not None:
        full["PATH"] = path
    full = {name: value for name, value in full.items() if value is not None}
    if "input" not in run:
        run.setdefault("stdin", subprocess.DEVNULL)
    run.setdefault("text", True)
    done = subprocess.run([*BBV, *args], cwd=cwd, env=full, capture_output=True, timeout=timeout,
                          **run)
    if "--debug" not in args:
        stderr = done.stderr if run["text"] else done.stderr.decode(errors="replace")
        assert "Traceback" not in stderr, stderr
    return done


def one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """bbv's whole stderr is one error line with these words, and the exit status is code."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bbv: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def error_line(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The one error line among bbv's status lines (bbv build says its defconfig first)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("bbv: error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under path with its size and mtime: what 'nothing written' compares."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


# The miniature barebox tree has a test suite of its own, run by `bbv test`, not by this one.
collect_ignore = ["fixtures"]
# The folder says what its tests need; integration/ (real QEMU, socat, compilers, gdb, git) may
# also hold pure tests and a real-barebox check beside the feature's other tests.
FOLDER_MARKERS = {"unit": "pure", "barebox": "barebox"}


def pytest_collection_modifyitems(config, items):
    loose = sorted({item.path.name for item in items if item.path.parent == TESTS})
    if loose:
        raise pytest.UsageError(f"{', '.join(loose)}: move into tests/unit, tests/integration "
                                "or tests/barebox, by what the tests need")
    misplaced = [item.nodeid for item in items
                 if (marker := FOLDER_MARKERS.get(item.path.parent.name))
                 and item.path.parent.parent == TESTS and not item.get_closest_marker(marker)]
    if misplaced:
        raise pytest.UsageError("tests without their folder's marker "
                                f"({FOLDER_MARKERS}): {', '.join(misplaced)}")


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
