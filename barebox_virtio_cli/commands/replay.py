"""bbv replay: the options, and run.replay to replay a recording of 'bbv run --record'."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--gdb", is_flag=False, flag_value="", default=None, metavar="[ENDPOINT]",
              help="Halt the replay for gdb on QEMU's gdb stub (a free loopback port; tcp::PORT, "
              "unix:PATH); prints the 'bbv gdb' command. reverse-stepi and reverse-continue work "
              "(not with a virtio console: QEMU 7.2).")
@click.option("--until", type=click.IntRange(min=1, max=2**63 - 1), metavar="INSTR",
              help="Stop the replay at this instruction count (QEMU replay-break).")
@click.option("--qemu", metavar="BINARY", help="Replay with this QEMU build (the version must "
              "be the one that recorded).")
def replay(directory: str, gdb: str | None, until: int | None, qemu: str | None) -> None:
    """Replay a recording of 'bbv run --record DIR', headless, and compare its serial output
    with the recorded one.

    \b
    Examples:
      bbv run -t vexpress --blk disk.img --rng --record rec --exec 'md -s /dev/hwrng0 0+16'
      bbv replay rec
      bbv replay rec --gdb     # then: bbv gdb -t vexpress ... (reverse-stepi works)
    """
    from barebox_virtio_cli.run.replay import replay as run_replay
    from barebox_virtio_cli.util.validate import check_not_empty

    check_not_empty("DIRECTORY", [directory], "the directory of a recording")  # '' is not '.'
    sys.exit(run_replay(Path(directory), gdb, until, qemu))
