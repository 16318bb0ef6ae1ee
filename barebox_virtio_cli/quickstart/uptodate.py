"""What a quickstart rerun can skip: a build whose record matches and whose tree has not
changed since, and a FAT disk that is as quickstart left it. A scan of file times, far cheaper
than Kbuild's own no-op make (which runs every Makefile and config check again)."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.build.record import RECORD_NAME, BuildRecord
from barebox_virtio_cli.quickstart.plan import STATE_FILE as STATE_NAME
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_json


def stale_reason(record: BuildRecord | None, target: str, defconfig: str, toolchain: str,
                 src: Path, image: Path, fragments: tuple[str, ...] = ()) -> str | None:
    """Why the recorded build is not the one asked for; None if it is. fragments: the
    target's kconfig fragments this tree has, which the recorded build must have merged."""
    if record is None:
        return "no earlier build"
    wanted = {"target": (record.target, target), "defconfig": (record.defconfig, defconfig),
              "toolchain": (record.toolchain, toolchain), "src": (record.src, src)}
    for key, (recorded, value) in wanted.items():
        if recorded != value:
            return f"the {key} changed ({recorded} -> {value})"
    missing = [f for f in fragments if f not in record.kconfig]
    if missing:
        return f"the target's kconfig fragments changed ({', '.join(missing)})"
    if record.image != image or not image.is_file():
        return f"{image.name} is missing"
    return None


def changed_since(tree: Path, since_ns: int, skip: set[Path]) -> Path | None:
    """The first file under tree modified after since_ns; hidden directories (.git), build-*
    output directories and the paths in skip (files or directories) are not looked at."""
    stack = [tree]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if Path(entry.path) in skip:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith((".", "build-")):
                        stack.append(Path(entry.path))
                elif entry.stat(follow_symlinks=False).st_mtime_ns > since_ns:
                    return Path(entry.path)
            except OSError:
                continue
    return None


def build_is_current(build_dir: Path, record: BuildRecord | None, target: str, defconfig: str,
                     toolchain: str, src: Path, image: Path,
                     ours: frozenset[Path] = frozenset(),
                     fragments: tuple[str, ...] = ()) -> tuple[bool, str]:
    """(True, why it is) or (False, why not) for the build in build_dir; `ours` are the files
    quickstart itself writes (its work directory may be inside the tree, or be the tree)."""
    reason = stale_reason(record, target, defconfig, toolchain, src, image, fragments)
    if reason:
        return False, reason
    since = (build_dir / RECORD_NAME).stat().st_mtime_ns
    config = build_dir / ".config"
    if not config.is_file() or config.stat().st_mtime_ns > since:
        return False, f"{config} changed"
    changed = changed_since(src, since, {build_dir, *ours})
    if changed is not None:
        return False, f"{changed} changed"
    return True, f"nothing in {src} changed since the last build"


def kept_token(work: Path, fat: Path) -> bytes | None:
    """The token of the FAT disk quickstart made before, if the disk is unchanged since."""
    state = read_object(work / STATE_NAME) or {}
    try:
        token = bytes.fromhex(state.get("token", ""))
        unchanged = fat.is_file() and state.get("fat") == stamp(fat)
    except (ValueError, OSError):
        return None
    return token if unchanged and len(token) == 4 else None


def keep_token(work: Path, fat: Path, token: bytes) -> None:
    write_json(work / STATE_NAME, {"token": token.hex(), "fat": stamp(fat)})
