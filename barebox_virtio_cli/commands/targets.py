"""bbv targets: the catalog as a table, or JSON for scripts."""

from __future__ import annotations

import json

import click

from barebox_virtio_cli.targets.catalog import load_catalog

# (heading, what of a target it shows): one row per target, whole values in a pipe
COLUMNS = (
    ("name", lambda t: t.name),
    ("--arch", lambda t: ", ".join(t.arch_names)),
    ("boots", lambda t: f"{t.qemu} -M {t.machine} -cpu {t.cpu}: {t.image} as -{t.load}, "
                        f"from {' or '.join(t.defconfigs)}"),
    ("barebox labgrid env", lambda t: t.labgrid_env or "-"),
    ("what and why the name", lambda t: t.description),
)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def targets(as_json: bool) -> None:
    """List the QEMU targets bbv knows (configs/*.toml and your own target files): what each
    boots, the barebox labgrid environment (test/ARCH/*.yaml) it matches, and its name's
    reason."""
    catalog = load_catalog()
    rows = [catalog.targets[name] for name in catalog.names()]
    if as_json:
        data = [{k: (str(v) if k == "path" else v) for k, v in vars(t).items()} for t in rows]
        click.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    from barebox_virtio_cli.util.output import stdout_console

    table = Table(title="bbv targets")
    for heading, _ in COLUMNS:
        table.add_column(heading)
    for t in rows:
        table.add_row(*(show(t) for _, show in COLUMNS))
    stdout_console().print(table)
