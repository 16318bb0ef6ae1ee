"""images/arch.py on the first bytes of images laid out as barebox's headers are
(arch/arm/include/asm/barebox-arm-head.h, arch/arm/cpu/head_64.S, the arm64 and RISC-V Image
headers, arch/mips/include/asm/pbl_macros.h), ELF and PE files; the real images of each target
are checked in tests/barebox/test_wrong_arch_barebox.py."""

from __future__ import annotations

import struct

import pytest

from barebox_virtio_cli.images.arch import ImageArch, image_arch, mismatch

pytestmark = pytest.mark.pure


def at(size: int = 0x200, **fields: bytes) -> bytes:
    """size bytes with each field (named _OFFSET in hex) written at its offset."""
    head = bytearray(size)
    for name, value in fields.items():
        offset = int(name.lstrip("_"), 16)
        head[offset:offset + len(value)] = value
    return bytes(head)


def elf(machine: int, elf_class: int, big_endian: bool = False) -> bytes:
    order = ">" if big_endian else "<"
    return at(_0=b"\x7fELF" + bytes([elf_class, 2 if big_endian else 1, 1]),
              _12=struct.pack(f"{order}H", machine))


def pe(machine: int) -> bytes:
    return at(_0=b"MZ", _3c=struct.pack("<I", 0x80), _80=b"PE\0\0" + struct.pack("<H", machine))


@pytest.mark.parametrize(("head", "expected"), [
    (at(_0=struct.pack("<I", 0xE28F9001), _20=b"barebox\0"), ImageArch("arm", 32)),  # thumb2
    (at(_0=struct.pack("<I", 0xEA00000E), _20=b"barebox\0"), ImageArch("arm", 32)),
    (at(_0=struct.pack("<I", 0xD503201F), _20=b"barebox\0"), ImageArch("arm", 64)),  # bios
    (at(_38=b"ARM\x64", _40=b"barebox\0"), ImageArch("arm", 64)),  # dt-2nd
    (at(_30=b"RISCV\0\1\0", _38=b"RSC\x05"), ImageArch("riscv", None)),
    (at(_30=b"barebox\0", _38=b"RSCV"), ImageArch("riscv", None)),
    (at(_0=b"\x10\x00\x00\x07", _10=b"barebox\0"), ImageArch("mips", None)),
    (at(_0=b"\x07\x00\x00\x10", _10=b"erab\0xob"), ImageArch("mips", None)),  # .swapped
    (elf(0x28, 1), ImageArch("arm", None)),  # QEMU boots it in AArch32 on a 64-bit core
    (elf(0xB7, 2), ImageArch("arm", 64)),
    (elf(0x08, 1, big_endian=True), ImageArch("mips", None)),
    (elf(0xF3, 1), ImageArch("riscv", 32)),
    (elf(0xF3, 2), ImageArch("riscv", 64)),
    (elf(0x3E, 2), ImageArch("x86", 64)),
    (pe(0x8664), ImageArch("x86", 64)),
    (pe(0xAA64), ImageArch("arm", 64)),
])
def test_headers_name_their_architecture(head, expected):
    assert image_arch(head) == expected


@pytest.mark.parametrize("head", [
    bytes(0x200), b"", b"\x7fELF", elf(0x99, 1), pe(0x1234), at(_0=b"MZ", _3c=b"\xff\xff\0\0"),
    at(_20=b"barebo"), at(_10=b"barebox!"),  # some other text
], ids=range(8))
def test_what_cannot_be_classified_is_none(head):
    assert image_arch(head) is None


def test_only_a_known_other_architecture_or_width_is_a_mismatch():
    assert mismatch(ImageArch("mips", None), "arm", 32)
    assert mismatch(ImageArch("arm", 64), "arm", 32)
    assert mismatch(ImageArch("arm", 32), "arm", 64)
    assert not mismatch(ImageArch("mips", None), "mips", 64)
    assert not mismatch(ImageArch("riscv", None), "riscv", 32)
    assert not mismatch(None, "x86", 64)
    assert ImageArch("mips", None).describe() == "mips"
    assert ImageArch("arm", 64).describe() == "64-bit arm"
