"""Helpers for tests that watch real processes through /proc (is it alive, its children, its
signal handlers, the QEMUs booting an image) and that assemble the tiny ARM guests of
tests/tinyguest into raw images QEMU's ARM virt boots with -kernel."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CROSS = "arm-linux-gnueabihf-"
TINYGUEST = Path(__file__).parent / "tinyguest"


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def catches(pid: int, *signals: int) -> bool:
    """Whether the process has handlers installed for all these signals (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line for line in status.splitlines() if line.startswith("SigCgt:"))
               .split()[1], 16)
    return all(mask >> (sig - 1) & 1 for sig in signals)


def is_qemu(pid: int) -> bool:
    try:
        return "qemu-system" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


def pids_with_arg(arg: Path | str) -> list[int]:
    """Live processes with this argument on their command line."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(arg).encode() in argv and alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def qemu_pids(image: Path) -> list[int]:
    """The live QEMU processes booting this image."""
    return [pid for pid in pids_with_arg(image) if is_qemu(pid)]


def assemble(source: Path, out: Path, name: str | None = None) -> Path:
    """A raw image of a tinyguest source, linked where QEMU's ARM virt loads -kernel."""
    stem = name or source.stem
    obj, elf, image = (out / f"{stem}{suffix}" for suffix in (".o", ".elf", ".img"))
    subprocess.run([f"{CROSS}as", "-o", obj, source], check=True)
    subprocess.run([f"{CROSS}ld", "-Ttext=0x40010000", "-o", elf, obj], check=True)
    subprocess.run([f"{CROSS}objcopy", "-O", "binary", elf, image], check=True)
    return image
