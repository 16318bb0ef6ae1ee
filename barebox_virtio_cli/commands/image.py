"""bbv image create: the options, one ImageRequest, images.create to write it."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from barebox_virtio_cli.util.status import say


@click.group()
def image() -> None:
    """Make disk images for 'bbv run --blk'."""


@image.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--size", required=True, metavar="SIZE", help="Image size: 64M, 1G, 512K, bytes.")
@click.option("--partition", type=click.Choice(["mbr"]),
              help="Add an MBR partition table with one partition from 1 MiB to the end.")
@click.option("--fat", is_flag=True,
              help="Make a FAT filesystem (in the partition with --partition, else on the disk).")
@click.option("--add", "adds", multiple=True, metavar="HOST_FILE[:NAME]",
              help="Copy a file (or directory) into the FAT filesystem as NAME (repeatable).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def create(**options) -> None:
    """Create the raw disk image FILE.

    \b
    Examples:
      bbv image create blank.img --size 16M
      bbv image create disk.img --size 64M --partition mbr --fat --add hello.txt
      bbv image create boot.img --size 32M --fat --add build/zImage:boot/zImage
    """
    from barebox_virtio_cli.images.create import ImageRequest, create
    from barebox_virtio_cli.util.validate import check_not_empty

    check_not_empty("FILE", [options["file"]])
    request = ImageRequest(**{**options, "file": Path(options["file"])})
    plan = create(request)
    what = ", ".join(w for w, on in (("MBR", request.partition), ("FAT", request.fat)) if on) \
        or "blank"
    say(f"wrote {request.file} ({request.size}, {what}, {len(plan.files)} file(s) added); "
        f"use it with: bbv run --blk {shlex.quote(str(request.file))}")
