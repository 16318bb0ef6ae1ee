"""bbv toolchain fetch ARCH: install a kernel.org crosstool GCC that `bbv build` then finds;
bbv toolchain list (alias: bbv toolchains): the cross compilers found per target."""

from __future__ import annotations

import json
from pathlib import Path

import click

from barebox_virtio_cli.targets import complete


@click.group()
def toolchain() -> None:
    """Find and download cross toolchains (list, fetch)."""


@toolchain.command(short_help='Download a kernel.org "nolibc" GCC for ARCH.')
@click.argument("arch", shell_complete=complete.targets_and_arches)
@click.option("--version", "version", metavar="X.Y.Z",
              help="GCC version on the mirror [default: the one barebox's CI uses].")
@click.option("--mirror", metavar="URL",
              help="Base URL [default: $BBV_TOOLCHAIN_MIRROR, config [toolchain] mirror, "
                   "else kernel.org].")
@click.option("--force", is_flag=True, help="Download again even if installed.")
def fetch(**options) -> None:
    """Download the kernel.org "nolibc" GCC for ARCH (an arch name or a bbv target)."""
    from barebox_virtio_cli.build.fetch import FetchRequest, install

    target, prefix = install(FetchRequest(**options))
    click.echo(f"installed {prefix} ({Path(prefix).parent.parent}); 'bbv build {target.name}' "
               "finds it with no flags")


def _list(names: tuple[str, ...], as_json: bool) -> None:
    from barebox_virtio_cli.build.toolchain import survey_targets

    report = survey_targets(list(names))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _table(report)


_LIST_HELP = "List, per target (arch), the compilers found: prefix, GCC version, source, the " \
    "one used."
_LIST_PARAMS = [click.Argument(["names"], nargs=-1, metavar="[TARGET]...",
                               shell_complete=complete.target_names),
                click.Option(["--json", "as_json"], is_flag=True, help="Print the result as JSON.")]
toolchain.add_command(click.Command("list", callback=_list, params=_LIST_PARAMS,
                                    help=_LIST_HELP,
                                    short_help="List the cross compilers found per target."))
# `bbv toolchains`: the same command under its old name.
toolchains = click.Command("toolchains", callback=_list, params=_LIST_PARAMS,
                           help=f"{_LIST_HELP}\n\nAn alias of 'bbv toolchain list'.")


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
