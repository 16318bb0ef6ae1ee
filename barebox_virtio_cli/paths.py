"""Where bbv keeps its files (platformdirs), and where its data files ship."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "bbv"


def config_dir() -> Path:
    return Path(os.environ.get("BBV_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def cache_dir() -> Path:
    return Path(os.environ.get("BBV_CACHE_DIR") or platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    return Path(os.environ.get("BBV_DATA_DIR") or platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    return Path(os.environ.get("BBV_STATE_DIR") or platformdirs.user_state_dir(APP))


def runtime_dir() -> Path:
    """Per-user directory for sockets, created private; /tmp/runtime-UID without XDG."""
    env = os.environ.get("BBV_RUNTIME_DIR")
    if env:
        path = Path(env)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(platformdirs.user_runtime_dir(APP))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def builtin_configs_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's top-level configs/."""
    here = Path(__file__).resolve().parent
    packaged = here / "configs"
    return packaged if packaged.is_dir() else here.parent / "configs"


def target_dirs() -> list[Path]:
    """Built-in targets first; the user's own (config dir, $BBV_TARGETS_PATH) override them."""
    dirs = [builtin_configs_dir(), config_dir() / "targets"]
    extra = os.environ.get("BBV_TARGETS_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs
