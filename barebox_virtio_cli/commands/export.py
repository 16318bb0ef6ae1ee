"""bbv export labgrid|lava: the setup `bbv run` would boot, as a labgrid environment for
barebox's pytest suite or as a LAVA job. Same options and checks as `bbv run`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from barebox_virtio_cli.commands.run import prepare, run_options
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.args import build_command
from barebox_virtio_cli.util.status import say
from barebox_virtio_cli.util.validate import Number


def _output_options(func):
    func = click.option("--force", is_flag=True, help="Replace FILE if it exists.")(func)
    return click.option("-o", "--output", required=True, metavar="FILE",
                        help="Where to write ('-' for standard output).")(func)


@click.group()
def export() -> None:
    """Write the setup of a 'bbv run' as a labgrid environment or a LAVA job."""


def _prepare(opts: dict):
    target, info, spec = prepare(opts.pop("target"), opts.pop("arch"), **opts, check_locks=False)
    return target, info, spec, build_command(target, spec, info)


@export.command(short_help="Write a labgrid environment for barebox's pytest suite.")
@run_options
@click.option("--barebox-src", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="barebox source tree whose test/strategy.py the file imports "
                   "(default: the current directory when it is one).")
@click.option("--no-strategy", is_flag=True,
              help="Plain labgrid file without barebox's BareboxTestStrategy.")
@_output_options
def labgrid(output: str, force: bool, barebox_src: Path | None, no_strategy: bool,
            **opts) -> None:
    """Write a labgrid environment for barebox's pytest suite (pytest --lg-env FILE).

    \b
    Example, in a barebox source tree:
      bbv export labgrid -t vexpress --blk a.img --rng -o bbv-vexpress.yaml
      pytest --lg-env bbv-vexpress.yaml
    """
    from barebox_virtio_cli.export.jobs import labgrid_env, to_yaml

    target, info, spec, groups = _prepare(opts)
    strategy = None if no_strategy else _strategy(barebox_src)
    env = labgrid_env(target, spec, groups, info.binary, strategy)
    _write(output, force, to_yaml(env, f"labgrid environment for bbv target '{target.name}', "
                                       "written by 'bbv export labgrid'"))


def _strategy(barebox_src: Path | None) -> Path:
    src = barebox_src or Path.cwd()
    strategy = src / "test" / "strategy.py"
    if not strategy.is_file():
        where = f"--barebox-src {src}" if barebox_src else f"the current directory ({src})"
        raise UsageError(f"{where} is not a barebox source tree (no test/strategy.py); run in "
                         "one, pass --barebox-src DIR, or --no-strategy for a plain labgrid file")
    return strategy.resolve()


@export.command(short_help="Write a LAVA job that boots barebox with these devices.")
@run_options
@click.option("--job-name", metavar="NAME", help="LAVA job name (default: bbv <target>).")
@click.option("--exec", "commands", multiple=True, metavar="CMD",
              help="barebox command to run after boot as an interactive test (repeatable).")
@click.option("--job-timeout", type=Number(int, 1, maximum=24 * 60, unit="minutes"), default=10,
              show_default=True, metavar="MINUTES", help="Timeout of the whole job.")
@_output_options
def lava(output: str, force: bool, job_name: str | None, commands: tuple[str, ...],
         job_timeout: int, **opts) -> None:
    """Write a LAVA job definition (device type qemu) that boots barebox with these devices.

    \b
    Example:
      bbv export lava -t vexpress --blk a.img --rng --exec 'ls /dev' -o job.yaml
      lavacli jobs submit job.yaml
    """
    from barebox_virtio_cli.export.jobs import LAVA_ARCHES, lava_arch, lava_job, to_yaml
    from barebox_virtio_cli.session.options import check_exec

    check_exec(list(commands))
    target, _, spec, groups = _prepare(opts)
    job = lava_job(target, spec, groups, job_name or f"bbv {target.name}", list(commands),
                   job_timeout)
    if lava_arch(target) not in LAVA_ARCHES:
        say(f"warning: LAVA's stock qemu device type has no arch '{lava_arch(target)}'; "
            "the lab's device type must list it")
    _write(output, force, to_yaml(job, f"LAVA job for bbv target '{target.name}', written by "
                                       "'bbv export lava'; image URLs are file:// paths on "
                                       "this machine"))


def _write(output: str, force: bool, text: str) -> None:
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise UsageError(f"{path} exists; add --force to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    say(f"wrote {path}")
