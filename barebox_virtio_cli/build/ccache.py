"""ccache for `bbv build`: put `ccache ` in front of the compiler prefix when ccache is installed
and works, with bbv's own cache directory unless the user has CCACHE_DIR set.

Off with --no-ccache or `[build] ccache = false` in the config file. A ccache that does not run
(`ccache --version` fails) or whose cache directory cannot be written is skipped with one line
saying why; the build goes on with the plain compiler."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.userconfig import config_file

# ccache's own failures, as it prints them in place of a compile ("ccache: error: ...").
_ERROR = re.compile(r"^ccache: (error|FATAL)", re.I)
_VERSION = re.compile(r"version (\d[\w.]*)")


@dataclass(frozen=True)
class Ccache:
    path: str
    version: str
    cache_dir: Path
    own_dir: bool  # bbv's directory (False: the user's $CCACHE_DIR)

    def prefix(self, cross_compile: str) -> str:
        return f"{self.path} {cross_compile}"

    def env(self) -> dict[str, str]:
        return {"CCACHE_DIR": str(self.cache_dir)}

    def describe(self) -> str:
        where = "bbv's cache" if self.own_dir else "$CCACHE_DIR"
        return f"through ccache {self.version} ({where} {self.cache_dir})"


def wanted(cli_off: bool, config: Mapping) -> bool:
    """--no-ccache wins; else `[build] ccache` in the config file (default on)."""
    if cli_off:
        return False
    value = config.get("build", {}).get("ccache", True) if isinstance(config.get("build"), dict) \
        else True
    if not isinstance(value, bool):
        raise BbvError(f"{config_file()}: [build] ccache must be true or false, not {value!r}")
    return value


def cache_dir(env: Mapping[str, str], bbv_cache: Path) -> tuple[Path, bool]:
    given = env.get("CCACHE_DIR")
    return (Path(given), False) if given else (bbv_cache / "ccache", True)


def find(env: Mapping[str, str], bbv_cache: Path) -> tuple[Ccache | None, str]:
    """The working ccache, or None and why not ("" when it is simply not installed)."""
    path = on_path("ccache", env.get("PATH", os.defpath))
    if path is None:
        return None, ""
    directory, own = cache_dir(env, bbv_cache)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"ccache: cache directory {directory}: {exc.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return None, f"ccache: cache directory {directory} is not writable"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20,
                              env={**env, "CCACHE_DIR": str(directory)})
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"ccache: {path} does not run ({exc})"
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()
        why = first[0] if first else f"exit status {done.returncode}"
        return None, f"ccache: '{path} --version' failed ({why})"
    match = _VERSION.search(done.stdout)
    return Ccache(path, match.group(1) if match else "?", directory, own), ""


def failed(lines: list[str]) -> bool:
    """Did ccache itself (not the compiler) make the build fail?"""
    return any(_ERROR.match(line) for line in lines)
