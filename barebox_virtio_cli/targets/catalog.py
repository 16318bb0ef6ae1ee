"""The target catalog: one TOML file per QEMU target in configs/, validated on load."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache

DEVICE_KINDS = ("blk", "rng", "console", "input", "net", "9p")


@dataclass  # not frozen: a frozen dataclass costs bbv start-up time
class Target:
    name: str
    path: Path
    description: str
    arch: str  # barebox's ARCH= (ARMv8 builds with ARCH=arm)
    bits: int
    defconfigs: list[str]
    image: str
    load: str  # "kernel" or "bios"
    qemu: str
    qemu_package: str
    machine: str
    cpu: str
    memory: str
    transport: str  # "mmio" or "pci"
    console: str  # barebox's device name for the virtio console, e.g. "cs1"
    console_active: bool  # barebox activates the virtio console by itself
    fw_cfg: bool
    arch_names: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=lambda: list(DEVICE_KINDS))
    mmio_transports: int = 0
    mmio_pin_bus: bool = False
    fw_cfg_min_qemu: str = ""
    firmware: list[str] = field(default_factory=list)
    firmware_package: str = ""
    qemu_firmware: str = ""  # what QEMU loads from its data dir when no -bios is given
    kconfig: list[str] = field(default_factory=list)
    # Compiler prefixes bbv searches for, most preferred first ("" = the host's own gcc).
    toolchain_prefixes: list[str] = field(default_factory=list)
    # fnmatch patterns for the CPU part of `gcc -dumpmachine` a compiler must report.
    gcc_machine: list[str] = field(default_factory=list)
    # The arch in MAKEALL's CROSS_COMPILE_<arch> (arm64 for ARMv8 although ARCH=arm); default arch.
    cross_compile_arch: str = ""
    # kernel.org crosstool triplet that `bbv toolchain fetch` downloads, e.g. "aarch64-linux".
    crosstool_triplet: str = ""
    # Debian package with a matching cross compiler, suggested when none is found.
    toolchain_package: str = ""


_CHOICES = {
    "load": ("kernel", "bios"),
    "transport": ("mmio", "pci"),
    "bits": (32, 64),
}


def _field_types() -> dict[str, type]:
    types = {"str": str, "int": int, "bool": bool, "list[str]": list}
    return {f.name: types[str(f.type)] for f in fields(Target) if f.name not in ("name", "path")}


def _required() -> set[str]:
    from dataclasses import MISSING

    return {
        f.name
        for f in fields(Target)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in ("name", "path")
    }


_KIND_NAMES = {list: "a list of strings", int: "an integer", str: "a string", bool: "true or false",
               dict: "a table"}


def parse_target(path: Path, data: dict) -> Target:
    """Validate one target file's contents; every error names the file and the field."""
    types = _field_types()
    for key in data:
        if key not in types:
            import difflib

            close = difflib.get_close_matches(key, types, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise BbvError(f"{path}: unknown field '{key}'{hint}")
    for key in sorted(_required() - data.keys()):
        raise BbvError(f"{path}: missing required field '{key}'")
    for key, value in data.items():
        want = types[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if ok and want is list:
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            kind = _KIND_NAMES.get(want, want.__name__)
            raise BbvError(f"{path}: field '{key}' must be {kind}, not {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise BbvError(f"{path}: field '{key}' must be one of {_CHOICES[key]}, not {value!r}")
    bad = [d for d in data.get("devices", []) if d not in DEVICE_KINDS]
    if bad:
        raise BbvError(f"{path}: field 'devices' has unknown kinds {bad}; known: {DEVICE_KINDS}")
    if data["transport"] == "mmio" and data.get("mmio_transports", 0) <= 0:
        raise BbvError(f"{path}: field 'mmio_transports' must be set for an mmio target")
    return Target(name=path.stem, path=path, **data)


def load_file(path: Path) -> Target:
    from barebox_virtio_cli.util.tomlfile import read_toml

    return parse_target(path, read_toml(path, "target file"))


@dataclass
class Catalog:
    targets: dict[str, Target]

    def names(self) -> list[str]:
        return sorted(self.targets)

    def get(self, name: str) -> Target:
        if name in self.targets:
            return self.targets[name]
        raise UsageError(f"unknown target '{name}'{_suggest(name, self.targets)}; "
                         "'bbv targets' lists them")

    def for_arch(self, arch: str) -> Target:
        for target in self.targets.values():
            if arch in target.arch_names:
                return target
        known = sorted({a for t in self.targets.values() for a in t.arch_names})
        raise UsageError(f"unknown arch '{arch}'{_suggest(arch, known)}; known: {', '.join(known)}")

    def resolve(self, name: str | None, arch: str | None, default: str = "vexpress") -> Target:
        if name and arch:
            target = self.get(name)
            if arch not in target.arch_names and arch != target.arch:
                raise UsageError(f"--target {name} is not an '{arch}' target; give one of the two")
            return target
        if name:
            return self.get(name)
        if arch:
            return self.for_arch(arch)
        return self.get(default)


def _suggest(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


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
    from barebox_virtio_cli.util.paths import cache_dir

    cache = cache_dir() / "catalog.json"
    stamps = [[str(path), *stamp(path)] for path in files]
    data = read_object(cache) or {}
    if data.get("stamps") == stamps:
        try:
            return [Target(name=path.stem, path=path, **d)
                    for path, d in zip(files, data["targets"], strict=True)]
        except (KeyError, TypeError, ValueError):
            pass
    targets = [load_file(path) for path in files]
    raw = [{k: v for k, v in vars(t).items() if k not in ("name", "path")} for t in targets]
    write_cache(cache, {"stamps": stamps, "targets": raw})
    return targets


def load_catalog(dirs: list[Path] | None = None) -> Catalog:
    if dirs is None:
        from barebox_virtio_cli.util.paths import target_dirs

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
