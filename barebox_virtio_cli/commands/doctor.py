"""bbv doctor: probe the host for what each target needs to build and boot, and say what to
install. The facts are gathered by doctor/host.py, the checks computed in doctor/checks.py."""

from __future__ import annotations

import json

import click

from barebox_virtio_cli.doctor.checks import Check
from barebox_virtio_cli.doctor.host import diagnose
from barebox_virtio_cli.targets import complete


@click.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...", shell_complete=complete.target_names)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def doctor(names: tuple[str, ...], as_json: bool) -> None:
    """Check that this host can build and boot each target (or the TARGETs named).

    Shows QEMU and its version, the cross compiler, make and barebox's host build tools,
    firmware and optional tools, what barebox's test suite (bbv test) needs on the host, and
    for anything missing the Debian/Ubuntu and Fedora packages to install. Exits 1 when a
    named target cannot be built or booted.
    """
    found = diagnose(list(names))
    host, per_target, verdicts, hints = found.host, found.per_target, found.verdicts, found.hints
    if as_json:
        click.echo(json.dumps({
            "host": [c.to_json() for c in host],
            "suite": [c.to_json() for c in found.suite],
            "targets": {name: {"build": verdicts[name].build, "boot": verdicts[name].boot,
                               "checks": [c.to_json() for c in checks]}
                        for name, checks in per_target.items()},
            "install": hints,
        }, indent=2))
    else:
        _print_table(host, per_target, verdicts, hints, found.suite)
    if found.failed(list(names)):
        raise SystemExit(1)


def _print_table(host, per_target, verdicts, hints, suite) -> None:
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
    tests = Table(title="barebox's test suite (bbv test)")
    for column in ("needs", "found"):
        tests.add_column(column)
    for c in suite:
        tests.add_row(c.item, _status(c))
    console.print(tools, targets, tests)
    missing = [c for c in [*host, *(c for cs in per_target.values() for c in cs), *suite]
               if not c.ok]
    for c in missing:
        where = {"host": "", "suite": "test suite: "}.get(c.scope, f"{c.scope}: ")
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
