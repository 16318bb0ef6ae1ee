"""--flash FILE: the NOR flash a firmware target boots from, kept in a file so that what barebox
writes there (saveenv, barebox-state) survives a restart, as on a board.

The file is made once from the barebox image, padded with 0xff (erased NOR) to the size of the
machine's flash bank (QEMU refuses any other size). After that it is the board's flash: bbv
boots what it holds and never rewrites it unless asked (--reflash writes a new image over the
start, keeping the environment and state behind it). Checking (plan_flash) and writing
(apply_flash) are apart, so a command refused later writes nothing and --dry-run writes nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.inuse import held_by_qemu
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.status import say

ERASED = b"\xff"
CREATE, REFLASH, USE = "create", "reflash", "use"


@dataclass
class FlashPlan:
    path: Path
    action: str  # CREATE, REFLASH or USE
    image: Path | None
    size: int  # bytes of the flash bank


def not_a_flash_target(target: Target) -> str:
    names = [t.name for t in load_catalog().targets.values() if t.pflash_mib]
    which = f": use {' or '.join(repr(n) for n in sorted(names))}" if names else ""
    return (f"--flash: target '{target.name}' loads barebox with -{target.load}, not from a "
            f"flash QEMU can keep in a file{which}")


def plan_flash(path: Path, image: Path | None, bank_mib: int, reflash: bool = False) -> FlashPlan:
    """What --flash will do with FILE; a UsageError for anything bbv must not touch."""
    path = Path(os.path.abspath(path))
    size = bank_mib << 20
    if not path.parent.is_dir():
        raise UsageError(f"--flash {path}: directory {path.parent} does not exist")
    if not os.path.lexists(path):
        _check_image(image, size, path)
        return FlashPlan(path, CREATE, image, size)
    if not path.is_file():
        raise UsageError(f"--flash {path}: exists and is not a regular file; choose another path")
    actual = path.stat().st_size
    if actual != size:
        raise UsageError(f"--flash {path}: exists and is {actual} bytes, not a {bank_mib} MiB "
                         "flash image; bbv does not overwrite it: choose another path or "
                         "remove it")
    if not os.access(path, os.R_OK | os.W_OK):
        raise UsageError(f"--flash {path}: not readable and writable")

    if held_by_qemu(path):
        raise UsageError(f"--flash {path}: in use by another QEMU; stop it first")
    if reflash:
        _check_image(image, size, path)
        return FlashPlan(path, REFLASH, image, size)
    if image is not None and not _holds(path, image):
        say(f"{path} holds another barebox than {image}; booting what the flash holds "
            "(--reflash writes the image into it, keeping the environment)")
    return FlashPlan(path, USE, image, size)


def _check_image(image: Path | None, size: int, path: Path) -> None:
    if image is None:
        raise UsageError(f"--flash {path}: no barebox image to write into it (--image PATH or "
                         "a build)")
    length = image.stat().st_size
    if length > size:
        raise UsageError(f"--flash: {image} is {length} bytes, more than the {size >> 20} MiB "
                         "flash")


def _holds(path: Path, image: Path) -> bool:
    data = image.read_bytes()
    with open(path, "rb") as fh:
        return fh.read(len(data)) == data


def apply_flash(plan: FlashPlan, dry_run: bool = False) -> None:
    """Create the file or write the image into it, as planned (on --dry-run: say so only)."""
    if plan.action == USE:
        return
    if dry_run:
        what = f"creates {plan.path} from" if plan.action == CREATE else \
            f"writes into {plan.path}"
        say(f"bbv run {what} {plan.image} ({plan.size >> 20} MiB flash)")
        return
    data = plan.image.read_bytes()
    if plan.action == REFLASH:
        with open(plan.path, "r+b") as fh:
            fh.write(data)
        say(f"wrote {plan.image} into the flash {plan.path}; the environment and state behind "
            "it are kept")
        return
    _create(plan, data)
    say(f"created flash {plan.path} ({plan.size >> 20} MiB) from {plan.image}")


def _create(plan: FlashPlan, data: bytes) -> None:
    tmp = plan.path.with_name(f".{plan.path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.write(ERASED * (plan.size - len(data)))
        os.link(tmp, plan.path)  # fails, rather than replaces, if the file appeared meanwhile
    except FileExistsError:
        raise UsageError(f"--flash {plan.path}: appeared while bbv was creating it; run again"
                         ) from None
    except OSError as exc:
        raise BbvError(f"--flash {plan.path}: cannot create it: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
