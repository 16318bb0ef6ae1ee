"""bbv doctor: probe the host for what each target needs to build and boot, and say what to
install. The checks themselves are computed in barebox_virtio_cli.doctor.checks."""

from __future__ import annotations

import json
import os

import click

from barebox_virtio_cli.doctor.checks import (
    Check,
    Packages,
    TargetFacts,
    host_checks,
    install_hints,
    load_packages,
    target_checks,
    verdict,
)
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import Target, load_catalog


def packages() -> Packages:
    from barebox_virtio_cli.util.paths import builtin_configs_dir

    return load_packages(builtin_configs_dir() / "doctor" / "packages.toml")


def probe_qemu(target: Target) -> dict:
    """QEMU path, version and machine/firmware facts, from the cached QMP probe."""
    from barebox_virtio_cli.qemu.probe import probe
    from barebox_virtio_cli.util.hosttools import on_path

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
        from barebox_virtio_cli.build.toolchain import Finder

        self.finder = Finder.default()

    def __call__(self, target: Target) -> dict:
        try:
            found = self.finder.find(target, target.defconfigs[-1])
        except BbvError as exc:
            return {"toolchain_error": str(exc)}
        return {"toolchain": found.describe(),
                "toolchain_summary": f"{found.prefix or 'gcc'} {found.info.version}"}


def gather(targets: list[Target], pkgs: Packages) -> tuple[list[Check], dict[str, list[Check]]]:
    from barebox_virtio_cli.util.hosttools import which

    programs = {name: which(name) for name in [*pkgs.build, *pkgs.optional]}
    find_toolchain = ToolchainFinder()
    per_target = {t.name: target_checks(t, TargetFacts(**probe_qemu(t), **find_toolchain(t)),
                                        pkgs)
                  for t in targets}
    return host_checks(programs, pkgs), per_target


@click.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...", shell_complete=complete.target_names)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def doctor(names: tuple[str, ...], as_json: bool) -> None:
    """Check that this host can build and boot each target (or the TARGETs named).

    Shows QEMU and its version, the cross compiler, make and barebox's host build tools,
    firmware and optional tools, and for anything missing the Debian/Ubuntu and Fedora
    packages to install. Exits 1 when a named target cannot be built or booted.
    """
    catalog = load_catalog()
    targets = [catalog.get(n) for n in dict.fromkeys(names)] or \
        [catalog.targets[n] for n in catalog.names()]
    host, per_target = gather(targets, packages())
    verdicts = {name: verdict(host, checks) for name, checks in per_target.items()}
    hints = install_hints([*host, *(c for cs in per_target.values() for c in cs)])
    if as_json:
        click.echo(json.dumps({
            "host": [c.to_json() for c in host],
            "targets": {name: {"build": verdicts[name].build, "boot": verdicts[name].boot,
                               "checks": [c.to_json() for c in checks]}
                        for name, checks in per_target.items()},
            "install": hints,
        }, indent=2))
    else:
        _print_table(host, per_target, verdicts, hints)
    failed = [n for n in names if not (verdicts[n].build and verdicts[n].boot)]
    if failed:
        raise SystemExit(1)


def _print_table(host, per_target, verdicts, hints) -> None:
    from rich.table import Table

    from barebox_virtio_cli.util.output import stdout_console

    console = stdout_console()
    tools = Table(title="host tools")
    for column in ("tool", "needed for", "found"):
        tools.add_column(column)
    for c in host:
        tools.add_row(c.item, c.needed_for, _status(c))
    targets = Table(title="targets")
    for column in ("target", "QEMU", "firmware", "cross compiler", "build", "boot"):
        targets.add_column(column)
    yes_no = {True: "[green]yes[/]", False: "[red]no[/]"}
    for name, checks in per_target.items():
        by_item = {_column(c): _status(c) for c in checks}
        targets.add_row(name, by_item.get("qemu", ""), by_item.get("firmware", "-"),
                        by_item.get("compiler", ""), yes_no[verdicts[name].build],
                        yes_no[verdicts[name].boot])
    console.print(tools, targets)
    missing = [c for c in [*host, *(c for cs in per_target.values() for c in cs)] if not c.ok]
    for c in missing:
        where = "" if c.scope == "host" else f"{c.scope}: "
        packages = ", ".join(f"{_DISTRO_NAMES[d]} {p}" for d, p in c.packages.items() if p)
        console.print(f"{where}{c.item}: {c.detail}" + (f" ({packages})" if packages else ""),
                      markup=False, highlight=False, soft_wrap=True)
    for distro, command in hints.items():
        console.print(f"{_DISTRO_NAMES[distro]}: {command}", markup=False, highlight=False,
                      soft_wrap=True)


_DISTRO_NAMES = {"debian": "Debian/Ubuntu", "fedora": "Fedora"}


def _column(check: Check) -> str:
    return {"firmware": "firmware", "cross compiler": "compiler"}.get(check.item, "qemu")


def _status(check: Check) -> str:
    if check.ok:
        return f"[green]{check.summary or check.detail}[/]"
    return "[yellow]missing[/]" if check.needed_for == "optional" else "[red]missing[/]"
