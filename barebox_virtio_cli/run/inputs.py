"""The inputs of `bbv run` checked against this machine before QEMU starts: the image (given or
found from `bbv build`'s records), --blk images (readable, writable, not held by another QEMU),
the console socket path (not a file, not served by a live QEMU), --fs, --env and the firmware."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from barebox_virtio_cli.build.record import find_image
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.arch import HEAD_SIZE, image_arch, mismatch
from barebox_virtio_cli.images.inuse import lock_conflict
from barebox_virtio_cli.qemu.args import EnvEntry, parse_port_forward
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.paths import runtime_dir
from barebox_virtio_cli.util.ports import bind_error, in_use


def resolve_image(target: Target, image: str | None, cwd: Path) -> Path:
    if image is not None:
        return check_image(existing_file(Path(image), "--image"), "--image", target)

    found, looked = find_image(target.name, target.image, cwd)
    if found is None:
        raise BbvError(f"no {target.image} for target '{target.name}' (looked at "
                       f"{', '.join(map(str, looked))}); build it with 'bbv build {target.name}' "
                       "or pass --image PATH")
    return found.resolve()


def existing_file(path: Path, option: str, how: str = "") -> Path:
    """how: what to do when it is missing (after '; ')."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file{how}") from None
    except OSError as exc:  # a name too long, a file as a directory in the path, a loop
        raise UsageError(f"{option} {shown(path)}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{option} {path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option} {path}: permission denied (not readable)")
    return path.resolve()


def shown(path: Path | str, most: int = 120) -> str:
    """A path for a message: one too long for any file system is cut in the middle."""
    text = str(path)
    return text if len(text) <= most else f"{text[:most // 2]}...{text[-most // 2:]}"


def check_image(path: Path, option: str, target: Target) -> Path:
    """A file QEMU can boot: not a device or FIFO, not empty, not text (a barebox image is
    binary), not an image of another architecture than the target's (when its header says
    which); QEMU would take any of them and barebox would never come."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{option} {path}: not a regular file; give a barebox image "
                         "(images/barebox-*.img of a build)")
    if info.st_size == 0:
        raise UsageError(f"{option} {path}: is empty; give a barebox image")
    with path.open("rb") as fh:
        head = fh.read(4096)
    if _TEXT.fullmatch(head):
        raise UsageError(f"{option} {path}: is a text file, not a barebox image")
    found = image_arch(head[:HEAD_SIZE])
    if mismatch(found, target.arch, target.bits):
        raise UsageError(f"{option} {path}: is an image for {found.describe()} and target "
                         f"'{target.name}' is {target.bits}-bit {target.arch}; boot it with "
                         "the target it was built for (-t TARGET, see 'bbv targets')")
    return path


def check_block_image(path: Path, snapshot: bool, check_locks: bool = True) -> Path:
    """check_locks=False where no QEMU starts here (bbv export)."""
    import shlex

    path = existing_file(path, "--blk", "; make one with 'bbv image create "
                         f"{shlex.quote(str(path))} --size 8M'")
    mode = path.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise UsageError(f"--blk {path}: not a disk image (a regular file or a block device); "
                         f"make one with 'bbv image create DISK.img --size 8M'")
    if not snapshot and not os.access(path, os.W_OK):
        raise UsageError(f"--blk {path}: not writable; add --snapshot to boot it read-only")
    problem = lock_conflict(path, snapshot) if check_locks else None
    if problem:
        raise UsageError(f"--blk {path}: {problem}")
    return path


def default_console_path(target: Target) -> Path:
    return runtime_dir() / f"{target.name}.console"


def check_console_path(path: Path) -> Path:
    """The console socket's absolute path; a stale socket there is fine (bbv replaces it)."""
    return sockets.check_free(path, f"--console {os.path.abspath(path)}")


_TAG = re.compile(r"[A-Za-z0-9_.-]+")
_TEXT = re.compile(rb"[\t\n\r\x20-\x7e]*")


def parse_fs(text: str, index: int) -> tuple[str, Path]:
    """[TAG=]DIR; the tag (the mount_tag, barebox's /mnt/9p/TAG) defaults to DIR's name."""
    tag, sep, directory = text.rpartition("=")
    path = Path(directory)
    if sep and not _TAG.fullmatch(tag):
        raise UsageError(f"--fs {text}: {_tag_problem(tag)}")
    if not path.is_dir():
        raise UsageError(f"--fs {text}: {directory} is not a directory")
    tag = tag if sep else (path.resolve().name or f"fs{index}")
    if not _TAG.fullmatch(tag):
        raise UsageError(f"--fs {text}: the directory's name '{tag}' is not a usable tag "
                         "(letters, digits, '_', '-' and '.'); give one as TAG=DIR")
    return tag, path.resolve()


def _tag_problem(tag: str) -> str:
    if not tag:
        return "the TAG before '=' is empty; give TAG=DIR, or DIR alone for its name as the tag"
    return f"TAG '{tag}' may hold only letters, digits, '_', '-' and '.'"


def port_forward(text: str, check_free: bool = True) -> str:
    """--port-forward as a hostfwd rule (qemu/args.py), its host port checked to be free:
    QEMU would otherwise start and then fail to set up the rule."""
    rule = parse_port_forward(text)
    if not check_free:
        return rule
    proto, host, ports = rule.split(":", 2)
    port = int(ports.split("-", 1)[0])
    exc = bind_error(host, port, udp=proto == "udp")
    if exc is not None:
        problem = "is in use" if in_use(exc) else f"cannot be listened on ({exc.strerror})"
        raise UsageError(f"--port-forward {text}: {proto} port {port} on {host} {problem}; "
                         "choose another host port (HOST:GUEST, e.g. 2222:22)")
    return rule


def parse_env(text: str) -> EnvEntry:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--env '{text}' is not PATH=VALUE or PATH=@FILE")
    if value.startswith("@"):
        path = existing_file(Path(value[1:]), "--env")
        if not path.is_file():
            raise UsageError(f"--env {text}: {path} is not a regular file")
        return EnvEntry(name, str(path), is_file=True)
    return EnvEntry(name, value)


def find_firmware(target: Target, info: QemuInfo, given: str | None) -> str | None:
    """The -bios file: --firmware, else the target's own, else None (QEMU's default)."""
    if given:
        path = existing_file(Path(given), "--firmware")
        if not path.is_file():
            raise UsageError(f"--firmware {path}: not a regular file")
        return str(path)
    for candidate in target.firmware:
        if os.path.isfile(candidate):
            return candidate
    if target.firmware:
        raise BbvError(f"target '{target.name}' needs firmware ({', '.join(target.firmware)}), "
                       f"none found; install it (Debian/Ubuntu: apt install "
                       f"{target.firmware_package}) or pass --firmware FILE")
    if target.qemu_firmware and not info.data_file(target.qemu_firmware):
        raise BbvError(f"{target.qemu} lacks its default firmware {target.qemu_firmware} (not in "
                       f"{', '.join(info.datadirs) or 'its data dirs'}; Debian does not package "
                       "it): pass one with --firmware FILE")
    return None
