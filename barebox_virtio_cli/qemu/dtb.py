"""--dtb FILE and --dump-dtb FILE: a device tree for QEMU to pass on, and the one QEMU generates
(`-machine dumpdtb=FILE`: QEMU builds the machine with all its devices, writes the tree, exits)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.machine import hint
from barebox_virtio_cli.util.status import say

FDT_MAGIC = b"\xd0\x0d\xfe\xed"
DUMP_TIMEOUT = 60.0


def is_dtb(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == FDT_MAGIC
    except OSError:
        return False


def check_dtb(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"--dtb {path}: no such file")
    if not path.is_file():
        raise UsageError(f"--dtb {path}: not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"--dtb {path}: permission denied (not readable)")
    if not is_dtb(path):
        raise UsageError(f"--dtb {path}: not a compiled device tree (no FDT magic); compile a "
                         f"source with: dtc -I dts -O dtb -o {path.stem}.dtb {path}")
    return path.resolve()


def check_dump_path(path: Path) -> Path:
    """Where QEMU may write its tree: never over a file that is not a device tree."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise UsageError(f"--dump-dtb {path}: directory {path.parent} does not exist")
    if os.path.lexists(path) and not (path.is_file() and (is_dtb(path) or
                                                          path.stat().st_size == 0)):
        raise UsageError(f"--dump-dtb {path}: exists and is not a device tree; choose another "
                         "file or remove it")
    return path


def dump_dtb(machine, path: Path) -> int:
    """Run the machine (qemu/machine.py, CAPTURE), whose command line has -machine
    dumpdtb=PATH; check what QEMU wrote."""
    with machine:
        try:
            _, stderr = machine.proc.communicate(timeout=DUMP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BbvError(f"QEMU did not write {path} within {DUMP_TIMEOUT:g} s (does this "
                           "machine build a device tree?)") from None
    returncode = machine.proc.returncode
    messages = [line for line in stderr.splitlines() if "dtb dumped" not in line]
    if returncode != 0:
        first = messages[0] if messages else f"exit status {returncode}"
        raise BbvError(f"QEMU could not dump its device tree: {first}{hint(stderr)}")
    if not is_dtb(path):
        raise BbvError(f"QEMU exited without writing a device tree to {path}")
    size = int.from_bytes(path.read_bytes()[4:8], "big")
    say(f"wrote QEMU's device tree for {machine.target.name} to {path} ({size} bytes); read it "
        f"with: dtc -I dtb -O dts {shlex.quote(str(path))}")
    return 0
