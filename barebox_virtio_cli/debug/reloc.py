"""Where barebox runs: the offset between its link addresses and the running copy.

barebox proper is linked at 0 and relocates itself at run time (on ARM to the end of RAM),
and the PBL runs wherever the image was loaded, so symbols must be loaded with an offset.
Two ways to find it, both pure: from a window of memory around the halted CPU's PC, matched
against the ELF's code (what `bbv gdb` does over the gdb stub), or from the "barebox code"
region that barebox's `iomem` command prints. Standard library only (gdb imports it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from barebox_virtio_cli.debug.elf import Section

KEY_LEN = 16  # bytes of code that must match exactly to propose an offset
MIN_SCORE = 0.75  # share of the compared words that must match the ELF at that offset
MIN_WORDS = 16  # words of the window that must lie in the ELF's code to judge an offset


@dataclass
class Match:
    offset: int  # runtime address - link address
    score: float  # share of the compared words that matched
    section: str


def locate(pc: int, window: bytes, window_start: int, code: list[Section],
           align: int = 4) -> Match | None:
    """The offset at which `code` (an ELF's executable sections) runs, given the memory
    `window` read at `window_start` around `pc`; None if the PC is not in that code.

    Words patched by relocation (literal pools on ARM) differ from the ELF, so offsets are
    proposed from several exact KEY_LEN-byte pieces of the window and judged by how much of
    the whole window matches."""
    candidates: dict[int, str] = {}
    for start in range(0, max(len(window) - KEY_LEN, 0) + 1, KEY_LEN):
        key = window[start:start + KEY_LEN]
        if len(key) < KEY_LEN or len(set(key)) < 4:  # padding, zeros: proves nothing
            continue
        for section in code:
            for index in _find_all(section.data, key):
                offset = window_start + start - (section.addr + index)
                if offset % align == 0 and _inside(section, pc - offset):
                    candidates.setdefault(offset, section.name)
    best: Match | None = None
    for offset, name in candidates.items():
        score = _score(window, window_start - offset, code)
        if best is None or score > best.score:
            best = Match(offset, score, name)
    return best if best is not None and best.score >= MIN_SCORE else None


def _find_all(data: bytes, key: bytes, limit: int = 64):
    index = data.find(key)
    while index >= 0 and limit:
        yield index
        limit -= 1
        index = data.find(key, index + 1)


def _inside(section: Section, addr: int) -> bool:
    return section.addr <= addr < section.addr + len(section.data)


def _score(window: bytes, link_start: int, code: list[Section]) -> float:
    """Share of the window's 4-byte words equal to the ELF's bytes at the same link address,
    among the words that lie in its code (the window may reach past a section's ends); 0 if
    fewer than MIN_WORDS do."""
    total = same = 0
    for pos in range(0, len(window) - 3, 4):
        addr = link_start + pos
        for section in code:
            if _inside(section, addr) and _inside(section, addr + 3):
                rel = addr - section.addr
                total += 1
                same += section.data[rel:rel + 4] == window[pos:pos + 4]
                break
    return same / total if total >= MIN_WORDS else 0.0


_IOMEM_LINE = re.compile(
    r"^\s*0x([0-9a-fA-F]+)\s*-\s*0x([0-9a-fA-F]+)\s+\(size[^)]*\)\s+(.*?)\s*$")


def parse_iomem(text: str) -> dict[str, tuple[int, int]]:
    """barebox's `iomem` output -> {region name: (start, end)}; the first of a name wins."""
    regions: dict[str, tuple[int, int]] = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():
        match = _IOMEM_LINE.match(line)
        if match:
            regions.setdefault(match[3], (int(match[1], 16), int(match[2], 16)))
    return regions


def offset_from_iomem(text: str, link_address: int = 0) -> int | None:
    """The relocation offset of barebox proper from `iomem` output: the start of its
    "barebox code" region minus where the ELF is linked (0 on ARM and RISC-V)."""
    region = parse_iomem(text).get("barebox code")
    return None if region is None else region[0] - link_address


PAGE = 4096
SCAN_PAGES = 64


def load_candidates(window: bytes, pc: int, little_endian: bool = True) -> list[int]:
    """Where the image may have been loaded, for a CPU halted before barebox ran (QEMU's boot
    code at the PC): every 32- and 64-bit value in the window around the PC (the boot code
    holds the entry address: ARM's stub as a literal, RISC-V's ROM in OpenSBI's
    fw_dynamic_info), then the pages after the PC's page."""
    order = "little" if little_endian else "big"
    found: dict[int, None] = {}
    for size in (4, 8):
        for pos in range(0, len(window) - size + 1, 4):
            value = int.from_bytes(window[pos:pos + size], order)
            if value % 4 == 0 and value >= PAGE:
                found.setdefault(value, None)
    page = pc - pc % PAGE
    for i in range(SCAN_PAGES):
        found.setdefault(page + i * PAGE, None)
    return list(found)
