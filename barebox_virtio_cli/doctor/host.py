"""The facts `bbv doctor` gathers on this host: programs on PATH, QEMU (from the cached QMP
probe), firmware files and cross compilers (the search `bbv build` does). The checks made of
them are pure, in doctor/checks.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build.toolchain import Finder
from barebox_virtio_cli.doctor.checks import (
    Check,
    Packages,
    TargetFacts,
    Verdict,
    host_checks,
    install_hints,
    target_checks,
    verdict,
)
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu.probe import probe
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.hosttools import on_path, which
from barebox_virtio_cli.util.paths import builtin_configs_dir
from barebox_virtio_cli.util.tomlfile import read_toml


def load_packages(path: Path) -> Packages:
    data = read_toml(path, "package list")
    try:
        return Packages(**{key: data.get(key, {} if key not in ("build", "optional") else [])
                           for key in Packages.__dataclass_fields__})
    except TypeError as exc:
        raise BbvError(f"{path}: unexpected layout: {exc}") from exc


def packages() -> Packages:
    return load_packages(builtin_configs_dir() / "doctor" / "packages.toml")


def probe_qemu(target: Target) -> dict:
    """QEMU path, version and machine/firmware facts, from the cached QMP probe."""
    path = on_path(target.qemu)
    if path is None:
        return {}
    try:
        info = probe(path)
    except BbvError as exc:
        return {"qemu_path": path, "qemu_error": str(exc)}
    firmware = next((f for f in target.firmware if os.path.isfile(f)), None)
    if not target.firmware and target.qemu_firmware:
        firmware = info.data_file(target.qemu_firmware)
    return {"qemu_path": path, "qemu_version": info.version, "firmware_path": firmware,
            "machine_known": target.machine.split(",", 1)[0] in info.machines}


class ToolchainFinder:
    """Adapter to barebox_virtio_cli.build.toolchain, the same search `bbv build` does."""

    def __init__(self) -> None:
        self.finder = Finder.default()

    def __call__(self, target: Target) -> dict:
        try:
            found = self.finder.find(target, target.defconfigs[-1])
        except BbvError as exc:
            return {"toolchain_error": str(exc)}
        return {"toolchain": found.describe(),
                "toolchain_summary": f"{found.prefix or 'gcc'} {found.info.version}"}


def gather(targets: list[Target], pkgs: Packages) -> tuple[list[Check], dict[str, list[Check]]]:
    programs = {name: which(name) for name in [*pkgs.build, *pkgs.optional]}
    find_toolchain = ToolchainFinder()
    per_target = {t.name: target_checks(t, TargetFacts(**probe_qemu(t), **find_toolchain(t)),
                                        pkgs)
                  for t in targets}
    return host_checks(programs, pkgs), per_target


@dataclass
class Diagnosis:
    host: list[Check]
    per_target: dict[str, list[Check]]
    verdicts: dict[str, Verdict]
    hints: dict[str, str]  # distro -> one install command for everything missing

    def failed(self, names: list[str]) -> list[str]:
        """The named targets this host cannot build or boot."""
        return [n for n in names if not (self.verdicts[n].build and self.verdicts[n].boot)]


def diagnose(names: list[str]) -> Diagnosis:
    """doctor's checks for the named targets (every target without names)."""
    catalog = load_catalog()
    targets = [catalog.get(n) for n in dict.fromkeys(names)] or \
        [catalog.targets[n] for n in catalog.names()]
    host, per_target = gather(targets, packages())
    verdicts = {name: verdict(host, checks) for name, checks in per_target.items()}
    hints = install_hints([*host, *(c for cs in per_target.values() for c in cs)])
    return Diagnosis(host, per_target, verdicts, hints)
