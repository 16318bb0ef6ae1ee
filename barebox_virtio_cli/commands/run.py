"""bbv run: the options, one RunRequest, and run.service to print or boot it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from barebox_virtio_cli.commands._options import run_options, script_options
from barebox_virtio_cli.run.request import RunRequest


@click.command()
@run_options
@click.option("-n", "--dry-run", is_flag=True, help="Print the QEMU command line, do not boot.")
@click.option("--attach", is_flag=True, help="Boot in the background and attach this terminal "
              "to the virtio console (implies --console); leaving it stops QEMU.")
@click.option("--keep-running", is_flag=True, help="Implies --attach; leaving with the escape "
              "key leaves QEMU and bbv's console server running.")
@click.option("--build", "build", is_flag=True,
              help="Rebuild the target's image first (incrementally, where it was built last).")
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="With --build: the barebox source tree.")
@click.option("-O", "--build-dir", type=click.Path(path_type=Path),
              help="With --build: the build directory.")
@click.option("--no-ccache", is_flag=True, help="With --build: do not compile through ccache.")
@click.option("--gdb", is_flag=False, flag_value="", default=None, metavar="[ENDPOINT]",
              help="QEMU's gdb stub (a free loopback port; tcp::PORT, unix:PATH); prints the "
              "'bbv gdb' command.")
@click.option("--gdb-wait", is_flag=True, help="Start the CPU halted until gdb continues.")
@click.option("--deterministic", is_flag=True, help="Guest time counted in instructions "
              "(QEMU -icount): barebox's timestamps and boot time equal run to run.")
@click.option("--record", metavar="DIR", help="Record the run with QEMU's record/replay into "
              "DIR (new or empty), for 'bbv replay DIR'.")
@click.option("--bootarg", multiple=True, metavar="ARG",
              help="Kernel command line word for barebox (-append; repeatable).")
@click.option("--dtb", metavar="FILE", help="Boot with this device tree (QEMU -dtb).")
@click.option("--dump-dtb", metavar="FILE",
              help="Write QEMU's device tree for this command line to FILE; no boot.")
@click.option("--flash", metavar="FILE", help="Keep the flash in FILE (made from the image the "
              "first time), so saveenv survives a restart.")
@click.option("--reflash", is_flag=True,
              help="Write the image into an existing --flash FILE (keeps the env).")
@click.option("--screenshot", metavar="FILE", help="Boot, run the --exec commands, save the "
              "screen as FILE (.png or .ppm); implies --graphic.")
@click.option("--qemu", metavar="BINARY", help="Run this QEMU build instead of the target's "
              "default.")
@click.option("--console-log", metavar="FILE", help="Append all virtio console output to FILE "
              "(implies --console).")
@script_options
def run(**options) -> None:
    """Boot barebox in QEMU with VirtIO devices (or print the command with --dry-run).

    \b
    Examples:
      bbv run --target vexpress --blk a.img --blk b.img --rng --console
      bbv run --arch mips --blk disk.img --dry-run
      bbv run --target vexpress --blk a.img --rng --exec 'ls /dev' --expect virtioblk0
    """
    from barebox_virtio_cli.run import service

    request = RunRequest(**options)
    if request.dry_run:
        click.echo(service.command_line(request))
        return
    sys.exit(service.boot(request))
