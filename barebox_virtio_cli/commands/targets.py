"""bbv targets: the catalog as a table, or JSON for scripts."""

from __future__ import annotations

import json

import click

from barebox_virtio_cli.targets.catalog import load_catalog

COLUMNS = ("name", "arch_names", "defconfigs", "image", "load", "machine", "transport")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def targets(as_json: bool) -> None:
    """List the QEMU targets bbv knows (configs/*.toml and your own target files)."""
    catalog = load_catalog()
    rows = [catalog.targets[name] for name in catalog.names()]
    if as_json:
        data = [{k: (str(v) if k == "path" else v) for k, v in vars(t).items()} for t in rows]
        click.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    from barebox_virtio_cli.util.output import stdout_console

    table = Table(title="bbv targets")
    for column in COLUMNS:
        table.add_column("--arch" if column == "arch_names" else column)
    for t in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v)
                        for v in (getattr(t, c) for c in COLUMNS)))
    stdout_console().print(table)
