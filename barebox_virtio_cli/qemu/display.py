"""--graphic and --screenshot: where QEMU's display goes, and a QMP screendump of it, so that
barebox's framebuffer console can be checked on a host without a display."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu import qmp
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.util.status import say

FORMATS = {".ppm": "ppm", ".png": "png"}
PNG_SINCE = (7, 1, 0)  # QMP screendump has had a format argument since QEMU 7.1
_MAGIC = (b"P6", b"\x89PNG")


def host_display() -> str | None:
    """The display QEMU's window would open on, or None on a headless host."""
    for name in ("WAYLAND_DISPLAY", "DISPLAY"):
        if os.environ.get(name):
            return f"${name}={os.environ[name]}"
    return None


def show_window(graphic: bool, screenshot: Path | None) -> tuple[bool, str | None]:
    """Whether QEMU may open its window, and a note for the user. Headless (or with
    --screenshot) QEMU gets -display none, never the VNC server it may fall back to, and the
    note says where the picture goes."""
    if not graphic or screenshot is not None:
        return False, None
    if host_display() is None:
        return False, ("no display here ($DISPLAY and $WAYLAND_DISPLAY are unset): QEMU runs "
                       "with -display none; see the screen with --screenshot FILE.png")
    return True, None


def check_screenshot_path(path: Path, info: QemuInfo) -> Path:
    path = Path(os.path.abspath(path))
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"--screenshot {path}: name it .png or .ppm (the formats QEMU writes)")
    if fmt == "png" and info.version < PNG_SINCE:
        raise UsageError(f"--screenshot {path}: PNG needs QEMU 7.1 or later (this is "
                         f"{'.'.join(map(str, info.version))}); name it .ppm")
    if not path.parent.is_dir():
        raise UsageError(f"--screenshot {path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--screenshot {path}: directory {path.parent} is not writable")
    if os.path.lexists(path) and not _is_picture(path):
        raise UsageError(f"--screenshot {path}: exists and is not a PPM or PNG picture; choose "
                         "another file or remove it")
    return path


def _is_picture(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return path.is_file() and (head == b"" or head.startswith(_MAGIC))


def picture_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PPM or PNG header."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"\x89PNG") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith(b"P6"):
        fields = head.split()
        if len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
            return int(fields[1]), int(fields[2])
    return None


class Screenshot:
    """A QMP socket for QEMU and, when the session is done, a screendump through it."""

    def __init__(self, path: Path):
        import tempfile

        self.path = path
        self.dir = Path(tempfile.mkdtemp(prefix="bbv-qmp-"))
        self.qmp = self.dir / "qmp"
        self.error: str | None = None
        self.taken = False

    def take(self) -> None:
        """Called while QEMU still runs; failures are kept in self.error, never raised."""
        client = None
        try:
            client = qmp.connect_unix(self.qmp)
            args = {"filename": str(self.path)}
            if self.path.suffix.lower() == ".png":
                args["format"] = "png"
            reply = qmp.execute(client, "screendump", **args)
            if "error" in reply:
                self.error = f"screendump to {self.path} failed: {reply['error'].get('desc')}"
            else:
                self.taken = True
        except Exception as exc:  # qemu.qmp's errors; QEMU gone, no display surface, ...
            self.error = f"screendump to {self.path} failed: {exc or type(exc).__name__}"
        finally:
            if client is not None:
                qmp.close(client)

    def report(self) -> bool:
        if self.error:
            say(f"error: {self.error}")
            return False
        if self.taken:
            size = picture_size(self.path)
            dims = f", {size[0]}x{size[1]}" if size else ""
            say(f"screenshot: {self.path}{dims}")
        return True

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

