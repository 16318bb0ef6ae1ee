"""Finding host programs, including the admin tools Debian keeps in /usr/sbin (mkfs.vfat,
sfdisk), which are not on an ordinary user's PATH there."""

from __future__ import annotations

import os

SBIN_DIRS = ("/usr/sbin", "/sbin")


def on_path(name: str, path: str | None = None) -> str | None:
    """The executable `name` in `path` ($PATH by default): shutil.which without importing
    shutil (and bz2, lzma) on bbv's start-up path."""
    for directory in (os.environ.get("PATH", os.defpath) if path is None else path).split(
            os.pathsep):
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def which(name: str) -> str | None:
    """on_path, also looking in the admin directories."""
    return on_path(name, os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN_DIRS]))


def not_installed(name: str, packages: dict[str, str]) -> str:
    """'mcopy is not installed (Debian/Ubuntu: apt install mtools; Fedora: dnf install mtools)'"""
    hints = [f"{label}: {verb} {packages[d]}" for d, label, verb in (
        ("debian", "Debian/Ubuntu", "apt install"), ("fedora", "Fedora", "dnf install"))
        if packages.get(d)]
    return f"{name} is not installed" + (f" ({'; '.join(hints)})" if hints else "")
