"""`bbv image create` as a service: a raw disk image made with sfdisk, mkfs.vfat and mtools in
a temporary file next to the target (util/atomic), replacing nothing unless asked to. The plan
of steps is pure, in images/plan.py."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.doctor.host import packages
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.inuse import held_by_qemu
from barebox_virtio_cli.images.plan import (
    ImagePlan,
    ImageStep,
    make_plan,
    parse_add,
    parse_size,
    steps,
)
from barebox_virtio_cli.util.atomic import replacing
from barebox_virtio_cli.util.hosttools import not_installed, which
from barebox_virtio_cli.util.validate import human_size


@dataclass
class ImageRequest:
    file: Path
    size: str
    partition: str | None = None  # "mbr" or None
    fat: bool = False
    adds: tuple[str, ...] = ()  # HOST[:NAME]
    force: bool = False


def create(request: ImageRequest) -> ImagePlan:
    """Check the request, then write the image; the plan that was carried out."""
    files = [parse_add(a, os.path.isfile) for a in request.adds]
    for f in files:
        if not f.host.exists():
            raise UsageError(f"--add {f.host}: no such file or directory")
        if not (f.host.is_file() or f.host.is_dir()):
            raise UsageError(f"--add {f.host}: not a regular file or a directory")
    plan = make_plan(parse_size(request.size), request.partition, request.fat, files)
    path = request.file
    if path.exists() and not request.force:
        raise UsageError(f"{path} exists; add --force to replace it")
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    if request.force and _held_by_qemu(path):
        raise UsageError(f"{path} is open in a running QEMU (it holds QEMU's image lock); stop "
                         "that QEMU first, or create another file")
    if not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist")
    check_image_fits(plan.size, path.parent.resolve())
    write_image(plan, path, request.force)
    return plan


def _held_by_qemu(path: Path) -> bool:
    return path.is_file() and held_by_qemu(path)


def write_image(plan: ImagePlan, path: Path, force: bool) -> None:
    """Build in a temporary file in the same directory, then move it into place."""
    _check_tools(plan, path)
    with replacing(path, replace=force) as tmp:
        with tmp.open("wb") as fh:
            fh.truncate(plan.size)
        for step in steps(plan, tmp):
            _run(step)


def _check_tools(plan: ImagePlan, path: Path) -> None:
    for tool in dict.fromkeys(s.tool for s in steps(plan, path)):
        if which(tool) is None:
            raise BbvError(not_installed(tool, packages().programs.get(tool, {})))


def _run(step: ImageStep) -> None:
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


def check_image_fits(size: int, directory: Path) -> None:
    """A --size the filesystem holding `directory` can take: no larger than its largest file
    and than the filesystem itself (the image is sparse, so free space is not the limit)."""
    try:
        bits = os.pathconf(directory, "PC_FILESIZEBITS")
        vfs = os.statvfs(directory)
    except (OSError, ValueError):
        return
    largest = (1 << (bits - 1)) - 1 if bits and bits > 0 else None
    total = vfs.f_blocks * vfs.f_frsize
    if largest is not None and size > largest:
        raise UsageError(f"--size {human_size(size)} is larger than the largest file the "
                         f"filesystem of {directory} can hold ({human_size(largest)})")
    if total and size > total:
        raise UsageError(f"--size {human_size(size)} is larger than the whole filesystem of "
                         f"{directory} ({human_size(total)}); give a smaller size")


def create_qcow2(path: Path, size: str = "64M") -> None:
    """An empty qcow2 file (qemu-img), e.g. where QEMU keeps VM snapshots of a replay."""
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True,
                       capture_output=True, text=True)
    except FileNotFoundError:
        raise BbvError("qemu-img is not installed (Debian: qemu-utils)") from None
    except subprocess.CalledProcessError as exc:
        raise BbvError(f"qemu-img could not create {path}: {exc.stderr.strip()}") from None
