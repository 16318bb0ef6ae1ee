"""bbv toolchains: per target, the cross compilers found, where from, and which bbv would use."""

from __future__ import annotations

import json

import click

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import load_catalog


@click.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...", shell_complete=complete.target_names)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def toolchains(names: tuple[str, ...], as_json: bool) -> None:
    """List, per target (arch), the compilers found: prefix, GCC version, source, the one used."""
    from barebox_virtio_cli.build.toolchain import Finder, machine_matches, resolve

    catalog = load_catalog()
    finder = Finder.default()
    report = []
    for target in [catalog.get(n) for n in names] or [catalog.targets[n] for n in catalog.names()]:
        defconfig = target.defconfigs[-1]
        try:
            use = resolve(target, finder.explicit(target, defconfig, None), finder.auto(target),
                          finder.probe).prefix
            problem = None
        except BbvError as exc:
            use, problem = None, str(exc)
        found = [{"prefix": c.prefix, "source": c.source,
                  "machine": info.machine if info else None,
                  "version": info.version if info else None,
                  "fits": bool(info and machine_matches(info.machine, target.gcc_machine)),
                  "used": c.prefix == use}
                 for c, info in finder.survey(target, defconfig)]
        report.append({"target": target.name, "arch": target.arch, "bits": target.bits,
                       "use": use, "problem": problem, "found": found})
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _table(report)


def _table(report: list[dict]) -> None:
    from rich.table import Table

    from barebox_virtio_cli.util.output import stdout_console

    table = Table(title="bbv toolchains (* = the one bbv build uses)")
    for column in ("target", "arch", "prefix", "GCC", "from"):
        table.add_column(column)
    for entry in report:
        arch = f"{entry['arch']} {entry['bits']}-bit"
        if not entry["found"]:
            table.add_row(entry["target"], arch, "[red]none found[/]", "", "")
        for i, f in enumerate(entry["found"]):
            mark = "* " if f["used"] else "  "
            version = f["version"] or "does not run"
            if f["machine"] and not f["fits"]:
                version += f" [red](wrong arch: {f['machine']})[/]"
            table.add_row(entry["target"] if i == 0 else "", arch if i == 0 else "",
                          mark + (f["prefix"] or "(host gcc)"), version, f["source"])
    console = stdout_console()
    console.print(table)
    for entry in report:
        if entry["problem"]:
            console.print(f"[yellow]{entry['target']}[/]: {entry['problem']}", soft_wrap=True)
