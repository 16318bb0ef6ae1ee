"""The board-debugging options of `bbv run`: --bootarg, --dtb, --dump-dtb, --flash/--reflash,
--screenshot and --qemu. Each is checked here before QEMU starts (one line, exit 2, for bad
input) and put into the RunSpec; files are written only by `prepare_boot`, after every check."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu import display
from barebox_virtio_cli.qemu.args import FB_CONSOLE, RunSpec, fw_cfg_usable
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.qemu.probe import probe
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.status import say


class BoardOptions:
    """What the options asked for (a plain class: a dataclass costs start-up time)."""

    __slots__ = ("bootargs", "dtb", "dump_dtb", "flash", "reflash", "screenshot", "qemu",
                 "flash_plan", "shot", "notes")

    def __init__(self, bootarg=(), dtb=None, dump_dtb=None, flash=None, reflash=False,
                 screenshot=None, qemu=None) -> None:
        self.bootargs, self.dtb, self.dump_dtb = list(bootarg), dtb, dump_dtb
        self.flash, self.reflash, self.screenshot, self.qemu = flash, reflash, screenshot, qemu
        self.flash_plan = self.shot = None
        self.notes: list[str] = []

    def check_combination(self, scripted: bool, attach: bool) -> None:
        if self.reflash and self.flash is None:
            raise UsageError("--reflash belongs to --flash FILE")
        if self.dump_dtb is not None:
            for name, given in (("--exec/--expect", scripted), ("--attach", attach),
                                ("--screenshot", self.screenshot)):
                if given:
                    raise UsageError(f"--dump-dtb writes QEMU's device tree and exits without "
                                     f"booting; leave out {name}")
        if self.screenshot is not None and attach:
            raise UsageError("--screenshot is taken at the end of a scripted boot; it cannot "
                             "go with --attach")

    def image_optional(self) -> bool:
        """--dump-dtb needs no image, nor does a flash file that holds one already."""
        return self.dump_dtb is not None or (self.flash is not None and not self.reflash
                                             and os.path.isfile(self.flash))

    def apply(self, target: Target, info: QemuInfo, spec: RunSpec) -> None:
        """Check the options against the target and fill them into spec (nothing written)."""
        spec.bootargs = list(self.bootargs)
        if self.dtb is not None:
            from barebox_virtio_cli.qemu.dtb import check_dtb

            spec.dtb = check_dtb(Path(self.dtb))
        if self.dump_dtb is not None:
            from barebox_virtio_cli.qemu.dtb import check_dump_path

            spec.dump_dtb = check_dump_path(Path(self.dump_dtb))
        if self.flash is not None:
            from barebox_virtio_cli.qemu.flash import not_a_flash_target, plan_flash

            if not target.pflash_mib:
                raise UsageError(not_a_flash_target(target))
            self.flash_plan = plan_flash(Path(self.flash), spec.image, target.pflash_mib,
                                         self.reflash)
            spec.flash = self.flash_plan.path
        if self.screenshot is not None:
            path = display.check_screenshot_path(Path(self.screenshot), info)
            spec.graphic = True  # a screenshot of nothing is no use
            self.shot = display.Screenshot(path)
            spec.qmp = self.shot.qmp
        spec.window, note = display.show_window(spec.graphic, self.shot and self.shot.path)
        self.notes = [note] if note and self.dump_dtb is None else []
        if spec.graphic and not fw_cfg_usable(target, info) and self.dump_dtb is None:
            self.notes.append(f"{target.machine} cannot activate barebox's framebuffer console "
                              f"at boot; type '{FB_CONSOLE}.active=ioe' (or --exec it) to see "
                              "it on the screen")

    def prepare_boot(self, dry_run: bool) -> None:
        """Write what the boot needs (the flash file), or on --dry-run say what would be."""
        for note in self.notes:
            say(note)
        if self.flash_plan is not None:
            from barebox_virtio_cli.qemu.flash import apply_flash

            apply_flash(self.flash_plan, dry_run)

    def close(self) -> None:
        if self.shot is not None:
            self.shot.close()


def qemu_binary(given: str) -> str:
    """--qemu BINARY: a path, or a name on PATH; an executable file, as an absolute path."""
    found = given if os.sep in given else on_path(given)
    if found is None and os.path.lexists(given):
        found = given  # a file here, not a program on PATH: checked as a path below
    if found is None or not os.path.lexists(found):
        raise UsageError(f"--qemu {given}: no such file" +
                         ("" if os.sep in given else " (nor a program on PATH)"))
    if os.path.isdir(found):
        raise UsageError(f"--qemu {given}: is a directory, not a QEMU binary")
    if not os.access(found, os.X_OK):
        raise UsageError(f"--qemu {given}: not executable; give a QEMU binary (e.g. "
                         "~/qemu/build/qemu-system-arm)")
    return os.path.abspath(found)


def probe_given(given: str) -> QemuInfo:
    """--qemu BINARY, checked and probed (and cached) like the target's own QEMU."""
    binary = qemu_binary(given)
    try:
        return probe(binary)
    except BbvError as exc:
        raise UsageError(f"--qemu {given}: not a QEMU system emulator? {exc}") from None
