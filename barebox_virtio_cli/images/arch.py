"""Which architecture a boot image is built for, read from its first bytes: an ELF's machine
field, the Linux-style headers of arm64 and RISC-V images, a PE/COFF (EFI) machine field, and
barebox's own header ("barebox" at 0x20 on ARM, at 0x10 on MIPS). Pure: the caller reads the
bytes. None when the image is none of these: such an image is not refused."""

from __future__ import annotations

import struct
from typing import NamedTuple

HEAD_SIZE = 0x200  # enough for every header below; the PE header is followed where it points


class ImageArch(NamedTuple):
    arch: str  # a target's arch: arm, mips, riscv, x86
    bits: int | None  # None: the header does not say, or it runs on either width

    def describe(self) -> str:
        return f"{self.bits}-bit {self.arch}" if self.bits else self.arch


# QEMU boots a 32-bit ARM ELF on a 64-bit core in AArch32: no width that rules it out.
_ELF_MACHINES = {0x28: ("arm", None), 0xB7: ("arm", 64), 0x08: ("mips", None),
                 0xF3: ("riscv", None), 0x03: ("x86", 32), 0x3E: ("x86", 64)}
_PE_MACHINES = {0x1C0: ("arm", 32), 0x1C2: ("arm", 32), 0x1C4: ("arm", 32),
                0xAA64: ("arm", 64), 0x14C: ("x86", 32), 0x8664: ("x86", 64),
                0x5032: ("riscv", 32), 0x5064: ("riscv", 64)}
_A64_NOP = 0xD503201F  # the first instruction of barebox's ARM64 header (head_64.S)


def image_arch(head: bytes) -> ImageArch | None:
    """The architecture the first bytes of an image (HEAD_SIZE of them) name, or None."""
    if head[:4] == b"\x7fELF" and len(head) >= 0x14:
        order = "<" if head[5] == 1 else ">"
        found = _ELF_MACHINES.get(struct.unpack_from(f"{order}H", head, 0x12)[0])
        if found is None:
            return None
        arch, bits = found
        if arch == "riscv":  # rv32 and rv64 share the machine; the class tells them apart
            bits = {1: 32, 2: 64}.get(head[4])
        return ImageArch(arch, bits)
    if head[0x38:0x3C] == b"ARM\x64":  # the arm64 Image header (barebox's dt-2nd images)
        return ImageArch("arm", 64)
    if head[0x38:0x3B] == b"RSC":  # the RISC-V Image header: "RSC\x05" (Linux's) or "RSCV"
        return ImageArch("riscv", None)
    if head[:2] == b"MZ" and len(head) >= 0x40:
        pe = struct.unpack_from("<I", head, 0x3C)[0]
        if head[pe:pe + 4] == b"PE\0\0" and len(head) >= pe + 6:
            found = _PE_MACHINES.get(struct.unpack_from("<H", head, pe + 4)[0])
            return ImageArch(*found) if found else None
    if head[0x20:0x28] == b"barebox\0":  # barebox_arm_head / __barebox_arm64_head
        first = struct.unpack_from("<I", head, 0)[0]
        return ImageArch("arm", 64 if first == _A64_NOP else 32)
    if head[0x10:0x18] in (b"barebox\0", b"erab\0xob"):  # mips_barebox_10h; word-swapped (LE)
        return ImageArch("mips", None)
    return None


def mismatch(found: ImageArch | None, arch: str, bits: int) -> bool:
    """Whether an image of found cannot run on a target of arch and bits."""
    if found is None:
        return False
    return found.arch != arch or (found.bits is not None and found.bits != bits)
