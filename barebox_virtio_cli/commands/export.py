"""bbv export labgrid|lava: the setup `bbv run` would boot, as a labgrid environment for
barebox's pytest suite or as a LAVA job. Same options and checks as `bbv run`."""

from __future__ import annotations

from pathlib import Path

import click

from barebox_virtio_cli.commands.run import prepare, run_options
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.args import build_command
from barebox_virtio_cli.util.status import say


def _output_options(func):
    func = click.option("--force", is_flag=True, help="Replace existing files.")(func)
    return click.option("-o", "--output", metavar="FILE|DIR/",
                        help="Where to write (default: standard output); a directory gets "
                             "TARGET.yaml for each target.")(func)


# Options that name one target's files or CPU, so they cannot go with several -t.
_ONE_TARGET_ONLY = ("image", "firmware", "cpu", "machine", "arch")


def _export_options(func):
    """bbv run's options, with -t repeatable: one file per target."""
    func = run_options(func)
    for index, param in enumerate(func.__click_params__):
        if param.name == "target":
            func.__click_params__[index] = click.Option(
                ["-t", "--target"], multiple=True,
                help="Target name from 'bbv targets' (repeatable: one file per target).")
    return func


@click.group()
def export() -> None:
    """Write the setup of a 'bbv run' as a labgrid environment or a LAVA job."""


def _prepare_each(opts: dict) -> list[tuple]:
    """(target, info, spec, QEMU option groups) for each -t (or the one --arch/default)."""
    names = list(dict.fromkeys(opts.pop("target"))) or [None]
    if len(names) > 1:
        given = [f"--{k}" for k in _ONE_TARGET_ONLY if opts.get(k)]
        if given:
            raise UsageError(f"{', '.join(given)} belong{'s' if len(given) == 1 else ''} to "
                             "one target; with several -t each uses its own defaults")
    arch = opts.pop("arch")
    prepared = []
    for name in names:
        target, info, spec = prepare(name, arch, **opts)
        prepared.append((target, info, spec, build_command(target, spec, info)))
    return prepared


@export.command()
@_export_options
@click.option("--barebox-src", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="barebox source tree whose test/strategy.py the file imports "
                   "(default: the current directory when it is one).")
@click.option("--no-strategy", is_flag=True,
              help="Plain labgrid file without barebox's BareboxTestStrategy.")
@_output_options
def labgrid(output: str | None, force: bool, barebox_src: Path | None, no_strategy: bool,
            **opts) -> None:
    """Write a labgrid environment for barebox's pytest suite (pytest --lg-env FILE).

    \b
    Example, in a barebox source tree:
      bbv export labgrid -t vexpress --blk a.img --rng -o bbv-vexpress.yaml
      pytest --lg-env bbv-vexpress.yaml
    """
    from barebox_virtio_cli.export.jobs import labgrid_env, to_yaml

    prepared = _prepare_each(opts)
    strategy = None if no_strategy else _strategy(barebox_src)
    texts = []
    for target, info, spec, groups in prepared:
        env = labgrid_env(target, spec, groups, info.binary, strategy)
        texts.append(to_yaml(env, f"labgrid environment for bbv target '{target.name}', "
                                  "written by 'bbv export labgrid'"))
    _write(output, force, [p[0].name for p in prepared], texts)


def _strategy(barebox_src: Path | None) -> Path:
    src = barebox_src or Path.cwd()
    strategy = src / "test" / "strategy.py"
    if not strategy.is_file():
        where = f"--barebox-src {src}" if barebox_src else f"the current directory ({src})"
        raise UsageError(f"{where} is not a barebox source tree (no test/strategy.py); run in "
                         "one, pass --barebox-src DIR, or --no-strategy for a plain labgrid file")
    return strategy.resolve()


@export.command()
@_export_options
@click.option("--job-name", metavar="NAME",
              help="LAVA job name (default: bbv <target>; with several -t: NAME <target>).")
@click.option("--exec", "commands", multiple=True, metavar="CMD",
              help="barebox command to run after boot as an interactive test (repeatable).")
@click.option("--job-timeout", type=click.IntRange(1, 24 * 60), default=10, show_default=True,
              metavar="MINUTES", help="Timeout of the whole job.")
@_output_options
def lava(output: str | None, force: bool, job_name: str | None, commands: tuple[str, ...],
         job_timeout: int, **opts) -> None:
    """Write a LAVA job definition (device type qemu) that boots barebox with these devices.

    \b
    Example:
      bbv export lava -t vexpress --blk a.img --rng --exec 'ls /dev' -o job.yaml
      lavacli jobs submit job.yaml
    """
    from barebox_virtio_cli.export.jobs import lava_job, lava_warnings, to_yaml

    prepared = _prepare_each(opts)
    texts = []
    for target, _, spec, groups in prepared:
        name = f"{job_name or 'bbv'} {target.name}" if len(prepared) > 1 or not job_name \
            else job_name
        job = lava_job(target, spec, groups, name, list(commands), job_timeout)
        for warning in lava_warnings(target, spec):
            say(f"warning: {warning}")
        texts.append(to_yaml(job, f"LAVA job for bbv target '{target.name}', written by "
                                  "'bbv export lava'; image URLs are file:// paths on this "
                                  "machine"))
    _write(output, force, [p[0].name for p in prepared], texts)


def _write(output: str | None, force: bool, names: list[str], texts: list[str]) -> None:
    from barebox_virtio_cli.export.output import STDOUT, destinations, write_atomically

    for dest, text in zip(destinations(output, names, force), texts, strict=True):
        if dest == STDOUT:
            click.echo(text, nl=False)
            continue
        write_atomically(Path(dest), text)
        say(f"wrote {dest}")
