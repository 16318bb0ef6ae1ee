"""bbv quickstart: the options, one QuickstartRequest, quickstart.service to get, build, boot
and check barebox, and the commands to go on with."""

from __future__ import annotations

from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number
from barebox_virtio_cli.quickstart.plan import DEFAULT_VERSION, go_on
from barebox_virtio_cli.quickstart.service import default_workdir
from barebox_virtio_cli.targets import complete


@click.command()
@click.option("-t", "--target", default="vexpress", show_default=True,
              help="Target to build and boot (see 'bbv targets').",
              shell_complete=complete.target_names)
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree to build; without it a release is downloaded.")
@click.option("--version", "version", metavar="YYYY.MM.N",
              help=f"barebox release to download [default: {DEFAULT_VERSION}].")
@click.option("--sha256", metavar="HEX",
              help="Expected sha256 of the release tarball, for a release bbv has no sum for.")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the source, build and disk images go "
                   f"[default: {default_workdir()}].")
@click.option("--timeout", type=Number.seconds(0, exclusive_min=True), default=30.0,
              show_default=True, metavar="S", help="Seconds for the boot and for each check.")
def quickstart(**options) -> None:
    """Get barebox, build TARGET, make two disks, boot them with an RNG and the virtio console,
    and check that each device works.

    \b
    Examples:
      bbv quickstart                       # download barebox from barebox.org
      bbv quickstart --src ~/barebox       # your tree, works offline
      bbv quickstart --version 2024.09.0 --workdir /tmp/qs
    """
    from barebox_virtio_cli.quickstart.service import QuickstartRequest, run_quickstart
    from barebox_virtio_cli.util.output import stdout_console

    done = run_quickstart(QuickstartRequest(**options))
    out = stdout_console()
    out.soft_wrap = True
    out.print(f"[bold green]barebox ({done.defconfig}) boots with two disks, an RNG and the "
              f"virtio console[/] ({done.seconds:.0f} s). Go on with:")
    for line in go_on(done.target, done.image, done.disks, done.console):
        out.print(f"  {line}", markup=False, highlight=False)
