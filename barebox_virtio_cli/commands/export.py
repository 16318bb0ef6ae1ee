"""bbv export labgrid|lava: the setup `bbv run` would boot, as a labgrid environment for
barebox's pytest suite or as a LAVA job. Same options and checks as `bbv run`."""

from __future__ import annotations

from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number, export_options
from barebox_virtio_cli.run.request import RunRequest


@click.group()
def export() -> None:
    """Write the setup of a 'bbv run' as a labgrid environment or a LAVA job."""


@export.command(short_help="Write a labgrid environment for barebox's pytest suite.")
@export_options
@click.option("--barebox-src", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="barebox source tree whose test/strategy.py the file imports "
                   "(default: the current directory when it is one).")
@click.option("--no-strategy", is_flag=True,
              help="Plain labgrid file without barebox's BareboxTestStrategy.")
def labgrid(output: str | None, force: bool, targets: tuple[str, ...], barebox_src: Path | None,
            no_strategy: bool, **options) -> None:
    """Write a labgrid environment for barebox's pytest suite (pytest --lg-env FILE).

    \b
    Example, in a barebox source tree:
      bbv export labgrid -t vexpress --blk a.img --rng -o bbv-vexpress.yaml
      pytest --lg-env bbv-vexpress.yaml
    """
    from barebox_virtio_cli.export.service import labgrid_file, per_target, write

    requests = per_target(RunRequest(**options), targets)
    _echo(write(output, force, [labgrid_file(r, barebox_src, no_strategy) for r in requests]))


@export.command(short_help="Write a LAVA job that boots barebox with these devices.")
@export_options
@click.option("--job-name", metavar="NAME",
              help="LAVA job name (default: bbv <target>; with several -t: NAME <target>).")
@click.option("--exec", "commands", multiple=True, metavar="CMD",
              help="barebox command to run after boot as an interactive test (repeatable).")
@click.option("--expect", "expectations", multiple=True, metavar="REGEX",
              help="Must match the --exec output (the boot log without --exec): a test case "
                   "(repeatable).")
@click.option("--job-timeout", type=Number(int, 1, maximum=24 * 60, unit="minutes"), default=10,
              show_default=True, metavar="MINUTES", help="Timeout of the whole job.")
def lava(output: str | None, force: bool, targets: tuple[str, ...], job_name: str | None,
         commands: tuple[str, ...], expectations: tuple[str, ...], job_timeout: int,
         **options) -> None:
    """Write a LAVA job definition (device type qemu) that boots barebox with these devices.

    \b
    Example:
      bbv export lava -t vexpress --blk a.img --rng --exec 'ls /dev' \\
          --expect virtioblk0 -o job.yaml
      lavacli jobs submit job.yaml
    """
    from barebox_virtio_cli.export.service import lava_file, per_target, write
    from barebox_virtio_cli.session.options import check_exec
    from barebox_virtio_cli.session.report import compile_patterns

    check_exec(list(commands))
    compile_patterns(list(expectations))
    requests = per_target(RunRequest(**options), targets)
    several = len(requests) > 1
    files = [lava_file(r, f"{job_name} {r.target}" if several and job_name else job_name,
                       list(commands), job_timeout, list(expectations)) for r in requests]
    _echo(write(output, force, files))


def _echo(texts: list[str]) -> None:
    for text in texts:
        click.echo(text, nl=False)
