"""Whether a disk image can be given to QEMU: QEMU's own image locks, and one file given twice.

QEMU (file-posix) takes shared byte-range locks on the images it opens: byte 100+N while it
holds permission N, 200+N while it refuses to share permission N with others (N: 0 consistent
read, 1 write). A writing QEMU holds 100, 101 and 201; one with -snapshot (or snapshot=on)
holds 100 and 201: it refuses to share "write", so it cannot start while a writer holds 101,
while two -snapshot QEMUs share an image. Seen with QEMU 7.2 in /proc/locks."""

from __future__ import annotations

import shlex
from pathlib import Path

from barebox_virtio_cli.errors import UsageError

_WRITE_HELD = 101
_ANY_LOCK = (100, 200)  # start, length: every permission byte, held or refused


def _held(path: Path, start: int, length: int) -> bool:
    """True if another process holds a lock in [start, start+length) of the file (an
    exclusive lock test needs the file open for writing; unwritable files test False)."""
    import fcntl

    try:
        with open(path, "r+b") as fh:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
            except OSError:
                return True
            fcntl.lockf(fh, fcntl.LOCK_UN, length, start)
    except OSError:
        return False
    return False


def held_by_qemu(path: Path) -> bool:
    """Whether any QEMU has the file open (as a disk or a flash)."""
    return _held(path, *_ANY_LOCK)


def lock_conflict(path: Path, snapshot: bool) -> str | None:
    """Why QEMU would refuse the image for this boot, with what works instead; None if not."""
    copy = f"cp {shlex.quote(str(path))} copy.img"
    if snapshot:
        if _held(path, _WRITE_HELD, 1):
            return ("another QEMU writes to it, and QEMU refuses even a --snapshot boot of an "
                    f"image being written: stop that QEMU, boot both with --snapshot, or boot a "
                    f"copy ({copy})")
        return None
    if held_by_qemu(path):
        return ("in use by another QEMU: stop it, boot both with --snapshot (neither writes "
                f"then), or boot a copy ({copy})")
    return None


def check_distinct(paths: list[Path], option: str = "--blk") -> None:
    """The same image twice would be two disks writing one file; QEMU refuses it with a lock
    error that sounds like another QEMU."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            same = "" if seen[key] == path else f" (as {seen[key]})"
            raise UsageError(f"{option} {path} is given twice{same}; one image file can be one "
                             f"disk only: copy it for a second disk "
                             f"(cp {shlex.quote(str(path))} copy.img)")
        seen[key] = path
