"""Just enough of ELF to match running code against a barebox build: the machine, and the
bytes and link addresses of the executable sections. Standard library only, because gdb's
embedded Python imports it too (see gdbhelper.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHF_EXECINSTR = 0x4
SHT_NOBITS = 8

# e_machine -> the name gdb's `set architecture` and bbv's messages use
MACHINES = {3: "i386", 8: "mips", 40: "arm", 62: "x86-64", 183: "aarch64", 243: "riscv"}


class ElfError(ValueError):
    pass


@dataclass
class Section:
    name: str
    addr: int
    data: bytes


@dataclass
class Elf:
    machine: str
    bits: int
    little_endian: bool
    code: list[Section]  # executable sections with contents, by link address


def read_elf(path: Path | str) -> Elf:
    blob = Path(path).read_bytes()
    if blob[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    bits = {1: 32, 2: 64}.get(blob[4])
    order = {1: "<", 2: ">"}.get(blob[5])
    if bits is None or order is None:
        raise ElfError(f"{path}: unknown ELF class or byte order")
    if bits == 32:
        machine, shoff, shentsize, shnum, shstrndx = _unpack(blob, order + "18xH12xI10xHHH", 0)
        section = order + "IIIIIIIIII"
    else:
        machine, shoff, shentsize, shnum, shstrndx = _unpack(blob, order + "18xH20xQ10xHHH", 0)
        section = order + "IIQQQQIIQQ"
    headers = [struct.unpack_from(section, blob, shoff + i * shentsize) for i in range(shnum)]
    if not headers:
        raise ElfError(f"{path}: no section headers")
    names = headers[shstrndx]
    code = []
    for name, kind, flags, addr, offset, size, *_ in headers:
        if flags & SHF_EXECINSTR and kind != SHT_NOBITS and size:
            code.append(Section(_cstring(blob, names[4] + name), addr, blob[offset:offset + size]))
    return Elf(MACHINES.get(machine, f"machine {machine}"), bits, order == "<", code)


def _unpack(blob: bytes, fmt: str, offset: int) -> tuple:
    try:
        return struct.unpack_from(fmt, blob, offset)
    except struct.error as exc:
        raise ElfError(f"truncated ELF header: {exc}") from exc


def _cstring(blob: bytes, offset: int) -> str:
    return blob[offset:blob.index(b"\0", offset)].decode(errors="replace")
