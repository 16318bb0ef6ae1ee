"""bbv image create: a raw disk image for --blk, made with sfdisk, mkfs.vfat and mtools in a
temporary file next to the target that replaces nothing unless --force is given."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import click

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.plan import ImagePlan, Step, make_plan, parse_add, parse_size, steps
from barebox_virtio_cli.util.status import say
from barebox_virtio_cli.util.validate import check_image_fits


@click.group()
def image() -> None:
    """Make disk images for 'bbv run --blk'."""


@image.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", required=True, metavar="SIZE", help="Image size: 64M, 1G, 512K, bytes.")
@click.option("--partition", type=click.Choice(["mbr"]),
              help="Add an MBR partition table with one partition from 1 MiB to the end.")
@click.option("--fat", is_flag=True,
              help="Make a FAT filesystem (in the partition with --partition, else on the disk).")
@click.option("--add", "adds", multiple=True, metavar="HOST_FILE[:NAME]",
              help="Copy a file (or directory) into the FAT filesystem as NAME (repeatable).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def create(file: Path, size: str, partition: str | None, fat: bool, adds: tuple[str, ...],
           force: bool) -> None:
    """Create the raw disk image FILE.

    \b
    Examples:
      bbv image create blank.img --size 16M
      bbv image create disk.img --size 64M --partition mbr --fat --add hello.txt
      bbv image create boot.img --size 32M --fat --add build/zImage:boot/zImage
    """
    files = [parse_add(a, os.path.isfile) for a in adds]
    for f in files:
        if not f.host.exists():
            raise UsageError(f"--add {f.host}: no such file or directory")
    plan = make_plan(parse_size(size), partition, fat, files)
    if file.exists() and not force:
        raise UsageError(f"{file} exists; add --force to replace it")
    if file.is_dir():
        raise UsageError(f"{file} is a directory")
    if not file.parent.is_dir():
        raise UsageError(f"directory {file.parent} does not exist")
    check_image_fits(plan.size, file.parent.resolve())
    build(plan, file, force)
    what = ", ".join(w for w, on in (("MBR", partition), ("FAT", fat)) if on) or "blank"
    say(f"wrote {file} ({size}, {what}, {len(files)} file(s) added); "
        f"use it with 'bbv run --blk {file}'")


def build(plan: ImagePlan, path: Path, force: bool) -> None:
    """Build in a temporary file in the same directory, then move it into place."""
    _check_tools(plan, path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.truncate(plan.size)
        for step in steps(plan, tmp):
            _run(step)
        os.chmod(tmp, 0o666 & ~_umask())
        _move_into_place(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)


def _check_tools(plan: ImagePlan, path: Path) -> None:
    from barebox_virtio_cli.commands.doctor import packages
    from barebox_virtio_cli.util.hosttools import not_installed, which

    for tool in dict.fromkeys(s.tool for s in steps(plan, path)):
        if which(tool) is None:
            raise BbvError(not_installed(tool, packages().programs.get(tool, {})))


def _run(step: Step) -> None:
    from barebox_virtio_cli.util.hosttools import which

    argv = [which(step.tool) or step.tool, *step.argv[1:]]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}  # no geometry complaints on plain images
    try:
        done = subprocess.run(argv, input=step.stdin, capture_output=True, text=True, env=env,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BbvError(f"{step.tool} failed to run: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise BbvError(f"{step.tool} failed (exit {done.returncode}): {lines[-1]}")


def _move_into_place(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails instead of replacing a file created meanwhile
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; add --force to replace it") from exc
    except OSError:  # no hard links on this filesystem
        if path.exists():
            raise UsageError(f"{path} exists; add --force to replace it") from None
        os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
