"""What `bbv build` built, recorded so that `bbv run` finds the image without flags.

Each build directory holds RECORD_NAME (JSON: target, arch, defconfig, toolchain, build_dir,
images). An index in the state dir maps each target to the build directory built last."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.util.jsonfile import read_object, write_json

RECORD_NAME = "bbv-build.json"


def default_build_dir(src: Path, target_name: str) -> Path:
    return src / f"build-{target_name}"


def _index_file() -> Path:
    from barebox_virtio_cli.util.paths import state_dir

    return state_dir() / "builds.json"


def read_record(build_dir: Path) -> dict | None:
    return read_object(build_dir / RECORD_NAME)


def write_record(build_dir: Path, record: dict) -> None:
    """Write the record into the build directory and point the index at it."""
    record = {**record, "build_dir": str(build_dir.resolve())}
    write_json(build_dir / RECORD_NAME, record, indent=2)
    index = _read_index()
    index[record["target"]] = record["build_dir"]
    write_json(_index_file(), index, indent=2)


def mark(build_dir: Path, target_name: str, replace: bool = False) -> None:
    """Claim the directory for bbv before make writes anything into it, so that a build
    interrupted in its first seconds leaves a directory `bbv build` (and --clean) accepts.
    An existing record stays (its figures estimate this build's progress) unless replace."""
    if replace or read_record(build_dir) is None:
        write_json(build_dir / RECORD_NAME, {"target": target_name, "complete": False,
                                             "build_dir": str(build_dir.resolve())}, indent=2)


def recorded_dir(target_name: str) -> Path | None:
    """The build directory the target was built in last (from the index)."""
    indexed = _read_index().get(target_name)
    return Path(indexed) if indexed else None


def _read_index() -> dict:
    return read_object(_index_file()) or {}


def candidate_build_dirs(target_name: str, cwd: Path) -> list[Path]:
    """Where a build of the target may be, most specific first."""
    dirs = [cwd, default_build_dir(cwd, target_name)]
    if os.environ.get("KBUILD_OUTPUT"):
        dirs.insert(1, Path(os.environ["KBUILD_OUTPUT"]))
    indexed = _read_index().get(target_name)
    if indexed:
        dirs.append(Path(indexed))
    return dirs


def find_image(target_name: str, image_name: str, cwd: Path) -> tuple[Path | None, list[Path]]:
    """The recorded image of the target, else images/<image_name> under cwd; and where it looked."""
    looked: list[Path] = []
    for build_dir in candidate_build_dirs(target_name, cwd):
        record = read_record(build_dir)
        if record is None or record.get("target") != target_name:
            continue
        path = Path(record.get("image") or build_dir / "images" / image_name)
        looked.append(path)
        if path.is_file():
            return path, looked
    path = cwd / "images" / image_name
    looked.append(path)
    return (path if path.is_file() else None), looked
