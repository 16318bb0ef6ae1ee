"""The user's config file: config.toml in bbv's config dir (platformdirs, or $BBV_CONFIG_DIR).

    [cross_compile]              # like MAKEALL's CROSS_COMPILE_<defconfig> / _<arch>
    multi_v8_defconfig = "/opt/gcc-15.2.0-nolibc/aarch64-linux/bin/aarch64-linux-"
    arm = "arm-linux-gnueabi-"

    [toolchain]
    mirror = "https://mirror.example/crosstool/files/bin"   # for `bbv toolchain fetch`
"""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.paths import config_dir
from barebox_virtio_cli.util.tomlfile import read_toml


def config_file() -> Path:
    return config_dir() / "config.toml"


def load() -> dict:
    path = config_file()
    if not path.exists():
        return {}
    return read_toml(path, "config file")


def table(data: dict, name: str) -> dict[str, str]:
    """A [name] table of strings; anything else is a one-line error naming the file."""
    value = data.get(name, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BbvError(f"{config_file()}: [{name}] must be a table of strings")
    return value
