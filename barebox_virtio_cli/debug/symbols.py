"""The symbol files of the build that made an image: `BUILD/barebox` (barebox proper) and the
PBL ELF the image starts with (`BUILD/images/start_*.pbl`, named in the image's Kbuild
command file)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError


@dataclass
class Symbols:
    build_dir: Path
    barebox: Path
    pbl: Path | None  # None when the image's command file does not name one


def build_dir_of(image: Path) -> Path:
    """barebox writes images into BUILD/images/."""
    return image.parent.parent if image.parent.name == "images" else image.parent


def pbl_of(build_dir: Path, image: Path) -> Path | None:
    """images/.IMAGE.cmd holds the command that made the image, e.g.
    `cat images/start_dt_2nd.pblb > images/barebox-dt-2nd.img`."""
    cmd = build_dir / "images" / f".{image.name}.cmd"
    try:
        text = cmd.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"images/(\S+)\.pblb?\b", text)
    if match is None:
        return None
    pbl = build_dir / "images" / f"{match[1]}.pbl"
    return pbl if pbl.is_file() else None


def find_symbols(image: Path | None, build_dir: Path | None, target_name: str) -> Symbols:
    if build_dir is not None:  # a directory: debug/session.plan_attach checked it
        where, other = f"in {build_dir}", "point --build-dir at the build of the image"
    elif image is not None:
        build_dir = build_dir_of(image)
        where, other = f"beside {image} (in {build_dir})", "pass --build-dir DIR"
    else:
        raise BbvError(f"no image for target '{target_name}' to take symbols from; "
                       "pass --image IMG or --build-dir DIR")
    barebox = build_dir / "barebox"
    if not barebox.is_file():
        raise BbvError(f"no barebox ELF {where}: symbols come from the barebox build that made "
                       f"the image (its build directory holds 'barebox'); build it with "
                       f"'bbv build {target_name}' or {other}")
    pbl = pbl_of(build_dir, image) if image is not None else None
    return Symbols(build_dir.resolve(), barebox.resolve(), pbl.resolve() if pbl else None)
