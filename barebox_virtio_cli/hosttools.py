"""Finding host programs, including the admin tools Debian keeps in /usr/sbin (mkfs.vfat,
sfdisk), which are not on an ordinary user's PATH there."""

from __future__ import annotations

import os
import shutil

SBIN_DIRS = ("/usr/sbin", "/sbin")


def which(name: str) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(name, path=os.pathsep.join([path, *SBIN_DIRS]))


def not_installed(name: str, packages: dict[str, str]) -> str:
    """'mcopy is not installed (Debian/Ubuntu: apt install mtools; Fedora: dnf install mtools)'"""
    hints = [f"{label}: {verb} {packages[d]}" for d, label, verb in (
        ("debian", "Debian/Ubuntu", "apt install"), ("fedora", "Fedora", "dnf install"))
        if packages.get(d)]
    return f"{name} is not installed" + (f" ({'; '.join(hints)})" if hints else "")
