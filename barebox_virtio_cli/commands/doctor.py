"""bbv doctor: probe the host for what each target needs to build and boot, and say what to
install. The facts are gathered by doctor/host.py, the checks computed in doctor/checks.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from barebox_virtio_cli.doctor.checks import Check
from barebox_virtio_cli.doctor.host import diagnose
from barebox_virtio_cli.targets import complete


@click.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...", shell_complete=complete.target_names)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--ci", is_flag=True,
              help="Instead: which envs of barebox's CI matrix (the tree's test-labgrid-pytest "
                   "workflow) this host can run, and the Debian packages for the others.")
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="With --ci: the barebox source tree [default: current directory].")
def doctor(names: tuple[str, ...], as_json: bool, ci: bool, src: Path | None) -> None:
    """Check that this host can build and boot each target (or the TARGETs named).

    Shows QEMU and its version, the cross compiler, make and barebox's host build tools
    (and those a build runs only when its config sets an option, such as convert for the
    logo), firmware and optional tools, what barebox's test suite (bbv test) needs on the host, and
    for anything missing the Debian/Ubuntu and Fedora packages to install. Exits 1 when a
    named target cannot be built or booted.
    """
    if ci or src is not None:
        _ci(names, as_json, ci, src)
        return
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
    blocks = check.needed_for in ("build", "boot", "test/py")  # not: optional, "build with X"
    return "[red]missing[/]" if blocks else "[yellow]missing[/]"


def _ci(names: tuple[str, ...], as_json: bool, ci: bool, src: Path | None) -> None:
    """bbv doctor --ci: the CI matrix's envs, runnable here or not, with what to install."""
    from barebox_virtio_cli.ci import matrix
    from barebox_virtio_cli.errors import UsageError
    from barebox_virtio_cli.util.output import stdout_console

    if not ci:
        raise UsageError("--src belongs to --ci; add --ci")
    if names:
        raise UsageError("--ci checks the CI matrix's envs, not targets; give no TARGET")
    plan = matrix.load((src or Path.cwd()).resolve(), [], given=src is not None)
    rows = [(j.job.defconfig, e.name, j.missing[e.name]) for j in plan.jobs for e in j.envs]
    packages = sorted({m.package for *_, lacks in rows for m in lacks
                       if m.package and " " not in m.package})
    if as_json:
        click.echo(json.dumps({"envs": [
            {"job": job, "env": env, "runnable": not lacks,
             "missing": [{"item": m.item, "detail": m.detail, "debian": m.package}
                         for m in lacks]} for job, env, lacks in rows],
            "install": {"debian": f"apt install {' '.join(packages)}"} if packages else {}},
            indent=2))
    else:
        from rich.table import Table

        table = Table(title="barebox CI envs on this host")
        for column in ("job", "env", "runs here", "missing (Debian package)"):
            table.add_column(column)
        for job, env, lacks in rows:
            table.add_row(job, env, "[red]no[/]" if lacks else "[green]yes[/]",
                          "; ".join(map(str, lacks)))
        console = stdout_console()
        console.soft_wrap = True
        console.print(table)
        if packages:
            console.print(f"Debian/Ubuntu: apt install {' '.join(packages)}", markup=False)
    cannot = [f"{env} ({', '.join(m.item for m in lacks)})" for _, env, lacks in rows if lacks]
    if cannot:
        from barebox_virtio_cli.util.status import say

        say(f"{len(cannot)} of {len(rows)} CI envs cannot run on this host: "
            f"{'; '.join(cannot)}")
        raise SystemExit(1)
