"""The target catalog: one TOML file per QEMU target in configs/, validated on load."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets.target import (  # noqa: F401 - the catalog's names, kept here
    DEVICE_KINDS,
    FEATURES,
    Catalog,
    Target,
    _field_types,
    parse_target,
)
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache
from barebox_virtio_cli.util.paths import cache_dir, target_dirs
from barebox_virtio_cli.util.tomlfile import read_toml


def load_file(path: Path) -> Target:
    return parse_target(path, read_toml(path, "target file"))


def _target_files(dirs: list[Path]) -> list[Path]:
    """Every target file; a later directory's file overrides an earlier one of the same name."""
    files: dict[str, Path] = {}
    for directory in dirs:
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".toml"))
        except OSError:
            continue
        files.update((n[:-5], directory / n) for n in names)
    return list(files.values())


def _cached_targets(files: list[Path]) -> list[Target]:
    """Parsing and validating TOML costs more than bbv's whole start-up budget allows, so the
    validated catalog is cached as JSON, keyed on every target file's path, mtime and size."""
    cache = cache_dir() / "catalog.json"
    stamps = [[str(path), *stamp(path)] for path in files]
    names = sorted(_field_types())  # a bbv with other Target fields must not reuse the cache
    data = read_object(cache) or {}
    if data.get("stamps") == stamps and data.get("fields") == names:
        try:
            return [Target(name=path.stem, path=path, **d)
                    for path, d in zip(files, data["targets"], strict=True)]
        except (KeyError, TypeError, ValueError):
            pass
    targets = [load_file(path) for path in files]
    raw = [{k: v for k, v in vars(t).items() if k not in ("name", "path")} for t in targets]
    write_cache(cache, {"stamps": stamps, "fields": names, "targets": raw})
    return targets


def load_catalog(dirs: list[Path] | None = None) -> Catalog:
    if dirs is None:
        dirs = target_dirs()
    targets = {t.name: t for t in _cached_targets(_target_files(dirs))}
    owner: dict[str, str] = {}
    for target in targets.values():
        for arch in target.arch_names:
            if arch in owner:
                raise BbvError(f"{target.path}: arch name '{arch}' is already the default "
                               f"of target '{owner[arch]}'")
            owner[arch] = target.name
    if not targets:
        raise BbvError(f"no target files found in {', '.join(map(str, dirs))}")
    return Catalog(targets)
