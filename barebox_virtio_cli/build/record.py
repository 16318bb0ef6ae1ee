"""What `bbv build` built, recorded so that `bbv run` finds the image without flags.

Each build directory holds RECORD_NAME, a BuildRecord as JSON, written and read only here. An
index in the state dir maps each target to the build directory built last."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.util.jsonfile import read_object, write_json
from barebox_virtio_cli.util.paths import state_dir

RECORD_NAME = "bbv-build.json"


@dataclass
class BuildRecord:
    """One build directory's last build. `complete` is False from the moment bbv claims the
    directory until make has finished; such a record has the target and build_dir only."""

    target: str = ""  # a bbv target, or a defconfig's name when no target boots it
    build_dir: Path | None = None
    complete: bool = True
    arch: str = ""
    defconfig: str = ""
    kconfig: list[str] = field(default_factory=list)  # fragments merged into .config
    toolchain: str = ""  # the CROSS_COMPILE prefix
    toolchain_source: str = ""  # how it was found
    gcc: str = ""  # its -dumpmachine
    gcc_version: str = ""
    ccache: bool = False  # compiled through ccache
    src: Path | None = None
    scope: str = ""  # "target" (the target's image only) or "all"
    goals: list[str] = field(default_factory=list)
    image: Path | None = None  # the target's image, if the build made it
    images: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    progress: dict[str, dict] = field(default_factory=dict)  # build/progress.py's history

    def to_json(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> BuildRecord:
        """Forgiving: a missing value, or one of the wrong type (a hand-edited file, an older
        bbv), is left at its default."""
        values = {name: _read(kind, data.get(name)) for name, kind in _KINDS.items()}
        return cls(**{name: value for name, value in values.items() if value is not None})


_KINDS: dict[str, object] = {
    "target": str, "build_dir": Path, "complete": bool, "arch": str, "defconfig": str,
    "kconfig": "strings", "toolchain": str, "toolchain_source": str, "gcc": str,
    "gcc_version": str, "ccache": bool, "src": Path, "scope": str, "goals": "strings",
    "image": Path, "images": "paths", "seconds": float, "progress": dict}


def _read(kind: object, value: object) -> object:
    """value as a field of this kind, or None for the default."""
    if kind is Path:
        return Path(value) if isinstance(value, str) and value else None
    if kind in ("strings", "paths"):
        if not isinstance(value, list):
            return None
        strings = [x for x in value if isinstance(x, str)]
        return [Path(x) for x in strings] if kind == "paths" else strings
    if kind is float:
        return float(value) if type(value) in (int, float) else None
    return value if type(value) is kind else None


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def default_build_dir(src: Path, target_name: str) -> Path:
    return src / f"build-{target_name}"


def _index_file() -> Path:
    return state_dir() / "builds.json"


def read_record(build_dir: Path) -> BuildRecord | None:
    data = read_object(build_dir / RECORD_NAME)
    return None if data is None else BuildRecord.from_json(data)


def write_record(build_dir: Path, record: BuildRecord, index: bool = True) -> None:
    """Write the record into the build directory and (index) point the index at it."""
    record = dataclasses.replace(record, build_dir=build_dir.resolve())
    write_json(build_dir / RECORD_NAME, record.to_json(), indent=2)
    if not index:
        return
    index = _read_index()
    index[record.target] = str(record.build_dir)
    write_json(_index_file(), index, indent=2)


def mark(build_dir: Path, target_name: str, replace: bool = False) -> None:
    """Claim the directory for bbv before make writes anything into it, so that a build
    interrupted in its first seconds leaves a directory `bbv build` (and --clean) accepts.
    An existing record stays (its figures estimate this build's progress) unless replace."""
    if replace or read_record(build_dir) is None:
        record = BuildRecord(target_name, build_dir.resolve(), complete=False)
        write_json(build_dir / RECORD_NAME, record.to_json(), indent=2)


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
        if record is None or record.target != target_name:
            continue
        path = record.image or build_dir / "images" / image_name
        looked.append(path)
        if path.is_file():
            return path, looked
    path = cwd / "images" / image_name
    looked.append(path)
    return (path if path.is_file() else None), looked
