"""Just enough of ELF to match running code against a barebox build: the machine, and the
bytes and link addresses of the executable sections. Standard library only, because gdb's
embedded Python imports it too (see gdbhelper.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHF_EXECINSTR = 0x4
SHT_NOBITS = 8
PT_LOAD = 1

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
    load_delta: int = 0  # file offset minus link address of the lowest PT_LOAD segment


def read_elf(path: Path | str) -> Elf:
    blob = Path(path).read_bytes()
    if blob[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    bits = {1: 32, 2: 64}.get(blob[4])
    order = {1: "<", 2: ">"}.get(blob[5])
    if bits is None or order is None:
        raise ElfError(f"{path}: unknown ELF class or byte order")
    if bits == 32:
        machine, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx = _unpack(
            blob, order + "18xH8xII6xHHHHH", 0)
        section, segment = order + "IIIIIIIIII", order + "III"  # type, offset, vaddr
    else:
        machine, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx = _unpack(
            blob, order + "18xH12xQQ6xHHHHH", 0)
        section, segment = order + "IIQQQQIIQQ", order + "I4xQQ"
    headers = [struct.unpack_from(section, blob, shoff + i * shentsize) for i in range(shnum)]
    if not headers:
        raise ElfError(f"{path}: no section headers")
    names = headers[shstrndx]
    code = []
    for name, kind, flags, addr, offset, size, *_ in headers:
        if flags & SHF_EXECINSTR and kind != SHT_NOBITS and size:
            code.append(Section(_cstring(blob, names[4] + name), addr, blob[offset:offset + size]))
    loads = [struct.unpack_from(segment, blob, phoff + i * phentsize)[:3] for i in range(phnum)]
    loads = [(vaddr, offset) for kind, offset, vaddr in loads if kind == PT_LOAD]
    delta = (lambda vaddr, offset: offset - vaddr)(*min(loads)) if loads else 0
    return Elf(MACHINES.get(machine, f"machine {machine}"), bits, order == "<", code, delta)


def _unpack(blob: bytes, fmt: str, offset: int) -> tuple:
    try:
        return struct.unpack_from(fmt, blob, offset)
    except struct.error as exc:
        raise ElfError(f"truncated ELF header: {exc}") from exc


def _cstring(blob: bytes, offset: int) -> str:
    return blob[offset:blob.index(b"\0", offset)].decode(errors="replace")
