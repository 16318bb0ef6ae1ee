"""Where bbv keeps its files (platformdirs), and where its data files ship."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "bbv"

# On Linux these are the XDG base directories, which platformdirs resolves the same way
# (tests/unit/test_paths.py checks it); reading them here keeps platformdirs, and the tempfile and
# shutil imports it brings, off the start-up path of every command.
_XDG = {
    "config": ("XDG_CONFIG_HOME", "~/.config"),
    "cache": ("XDG_CACHE_HOME", "~/.cache"),
    "data": ("XDG_DATA_HOME", "~/.local/share"),
    "state": ("XDG_STATE_HOME", "~/.local/state"),
}


def _user_dir(kind: str) -> Path:
    override = os.environ.get(f"BBV_{kind.upper()}_DIR")
    if override:
        return Path(override)
    if sys.platform.startswith("linux"):
        variable, default = _XDG[kind]
        base = os.environ.get(variable, "")
        if not os.path.isabs(base):
            base = os.path.expanduser(default)
        return Path(base, APP)
    import platformdirs

    return Path(getattr(platformdirs, f"user_{kind}_dir")(APP))


def config_dir() -> Path:
    return _user_dir("config")


def cache_dir() -> Path:
    return _user_dir("cache")


def data_dir() -> Path:
    return _user_dir("data")


def state_dir() -> Path:
    return _user_dir("state")


def runtime_dir() -> Path:
    """Per-user directory for sockets, created private; /tmp/runtime-UID without XDG."""
    env = os.environ.get("BBV_RUNTIME_DIR")
    if env:
        path = Path(env)
    else:
        import warnings

        import platformdirs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(platformdirs.user_runtime_dir(APP))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def builtin_configs_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's top-level configs/."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "configs"
    return packaged if packaged.is_dir() else here.parent / "configs"


def target_dirs() -> list[Path]:
    """Built-in targets first; the user's own (config dir, $BBV_TARGETS_PATH) override them."""
    dirs = [builtin_configs_dir(), config_dir() / "targets"]
    extra = os.environ.get("BBV_TARGETS_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs
