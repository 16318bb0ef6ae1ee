"""Pure logic of `bbv image create`: sizes, the partition layout, and the argv of each Debian
tool (sfdisk, mkfs.vfat, mmd, mcopy) that builds the image. Nothing runs here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from barebox_virtio_cli.errors import UsageError

SECTOR = 512
PART_START = 2048  # sectors: the 1 MiB alignment fdisk and sfdisk use
MIN_SIZE = 1 << 20
MBR_MAX = (1 << 32) * SECTOR  # MBR sector fields are 32 bits
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_FAT_BAD = set('"*:<>?\\|') | {chr(c) for c in range(32)}
SIZE_MAX = 1 << 50  # 1 PiB: beyond any file system's file size here
FAT_NAME_MAX = 255  # VFAT long names (mcopy crashes on longer ones)
# FAT variant by filesystem size: what fits its cluster-count limits with mkfs.vfat's defaults,
# and the matching MBR partition type (FAT12, FAT16 LBA, FAT32 LBA).
_FAT_TYPES = ((16 << 20, 12, "1"), (512 << 20, 16, "e"), (None, 32, "c"))


@dataclass(frozen=True)
class AddFile:
    host: Path
    name: str  # path inside the FAT filesystem, '/'-separated, no leading '/'


@dataclass(frozen=True)
class ImageStep:
    tool: str  # program name, for "not installed" messages
    argv: list[str]
    stdin: str | None = None


@dataclass(frozen=True)
class ImagePlan:
    size: int
    partition: str | None = None  # "mbr" or None
    fat: bool = False
    files: list[AddFile] = field(default_factory=list)

    @property
    def offset(self) -> int:
        """Where the filesystem starts, in bytes."""
        return PART_START * SECTOR if self.partition else 0

    @property
    def fs_size(self) -> int:
        return self.size - self.offset

    @property
    def fat_bits(self) -> int:
        return next(bits for limit, bits, _ in _FAT_TYPES if limit is None or self.fs_size < limit)

    @property
    def partition_type(self) -> str:
        if not self.fat:
            return "83"  # Linux: a raw partition barebox exposes as /dev/virtioblkN.0
        return next(t for limit, _, t in _FAT_TYPES if limit is None or self.fs_size < limit)


def parse_size(text: str) -> int:
    """'64M', '1G', '512K', '1048576', '64MiB' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--size '{text}' is not a size like 64M, 1G or 1048576")
    size = int(match[1]) * _UNITS[match[2].upper()]
    if size == 0:
        raise UsageError(f"--size {text}: the size must be more than 0; give a size like 64M")
    if size > SIZE_MAX:
        raise UsageError(f"--size {text} is more than {SIZE_MAX >> 40} TiB, more than any "
                         "filesystem here holds; give a size like 64M")
    if size % SECTOR:
        raise UsageError(f"--size {text} is not a multiple of {SECTOR} bytes")
    return size


def parse_add(text: str, is_file) -> AddFile:
    """HOST_FILE[:NAME]; a HOST_FILE that itself contains ':' is taken whole when it exists."""
    host, sep, name = text.rpartition(":")
    if not sep or not host or is_file(text):
        host, name = text, ""
    name = name or Path(host).name
    parts = PurePosixPath(name.strip("/")).parts
    if not parts or any(p in (".", "..") or set(p) & _FAT_BAD for p in parts):
        raise UsageError(f"--add {text}: '{name}' is not a usable FAT file name (no "
                         "'..', no control characters or any of \" * : < > ? \\ |)")
    if any(len(p.encode()) > FAT_NAME_MAX for p in parts):
        raise UsageError(f"--add {text}: a FAT file name has at most {FAT_NAME_MAX} characters")
    return AddFile(Path(host), "/".join(parts))


def make_plan(size: int, partition: str | None, fat: bool, files: list[AddFile]) -> ImagePlan:
    plan = ImagePlan(size, partition, fat, files)
    minimum = MIN_SIZE + plan.offset
    if size < minimum:
        raise UsageError(f"--size {size >> 10} KiB is too small; at least {minimum >> 20} MiB "
                         f"{'with a partition table' if partition else 'is needed'}")
    if partition and size > MBR_MAX:
        raise UsageError(f"--size is larger than the {MBR_MAX >> 40} TiB an MBR can address")
    if files and not fat:
        raise UsageError("--add needs --fat: files go into a FAT filesystem")
    seen: dict[str, str] = {}
    for f in files:
        key = f.name.lower()  # FAT names are case-insensitive
        if key in seen:
            raise UsageError(f"--add: '{f.name}' is given twice (as '{seen[key]}' too)")
        seen[key] = f.name
    return plan


def steps(plan: ImagePlan, image: Path) -> list[ImageStep]:
    """The tool runs that turn a zero-filled file of plan.size bytes into the image."""
    out = []
    if plan.partition:
        script = f"label: dos\nunit: sectors\nstart={PART_START}, type={plan.partition_type}\n"
        out.append(ImageStep("sfdisk", ["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet",
                                   str(image)], script))
    if not plan.fat:
        return out
    mkfs = ["mkfs.vfat", "-F", str(plan.fat_bits)]
    if plan.partition:
        mkfs += ["--offset", str(PART_START)]
    out.append(ImageStep("mkfs.vfat", [*mkfs, str(image), str(plan.fs_size // 1024)]))
    drive = f"{image}@@{plan.offset}"
    for directory in _directories(plan.files):
        out.append(ImageStep("mmd", ["mmd", "-i", drive, f"::/{directory}"]))
    for f in plan.files:
        out.append(ImageStep("mcopy", ["mcopy", "-s", "-i", drive, str(f.host), f"::/{f.name}"]))
    return out


def _directories(files: list[AddFile]) -> list[str]:
    """Every parent directory of the added names, parents before children."""
    dirs = {str(p) for f in files for p in PurePosixPath(f.name).parents if str(p) != "."}
    return sorted(dirs, key=lambda d: (d.count("/"), d))
