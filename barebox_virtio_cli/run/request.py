"""What `bbv run` (and `bbv export`, quickstart) is asked to boot: one typed request. Pure.

Each field is one command-line option of `bbv run` with the same name (commands/_options.py):
a new run option is a field here and a click option there."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(kw_only=True)
class RunRequest:
    """Typed fields with defaults, set by keyword."""

    # the machine and the image
    target: str | None = None
    arch: str | None = None
    image: str | None = None
    # devices
    blk: tuple[str, ...] = ()
    rng: int = 0
    console: str | None = None  # None: no virtio console; "": the default socket path
    console_log: str | None = None  # all virtio console output appended here (implies console)
    input: bool = False
    net: bool = False
    port_forward: tuple[str, ...] = ()
    fs: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    # machine overrides
    memory: str | None = None
    cpu: str | None = None
    machine: str | None = None
    firmware: str | None = None
    snapshot: bool = False
    graphic: bool = False
    qemu_arg: tuple[str, ...] = ()
    # rebuild first (build/service.py: build_for_run)
    build: bool = False
    src: Path | None = None
    build_dir: Path | None = None
    no_ccache: bool = False
    # debugging
    gdb: str | None = None  # None: no stub; "": a free loopback port
    gdb_wait: bool = False
    # guest time from instructions; QEMU's record/replay (run/recording.py)
    deterministic: bool = False
    record: str | None = None  # a directory for the recording
    # debugging like on a board (qemu/board.py)
    bootarg: tuple[str, ...] = ()
    dtb: str | None = None
    dump_dtb: str | None = None
    flash: str | None = None
    reflash: bool = False
    screenshot: str | None = None
    qemu: str | None = None
    # what to do with it
    dry_run: bool = False
    attach: bool = False
    keep_running: bool = False
    # a scripted boot (session/options.py checks these)
    exec: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    timeout: float | None = None
    junit: str | None = None
    json: bool = False

    def replace(self, **changes) -> RunRequest:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


FIELDS = frozenset(field.name for field in dataclasses.fields(RunRequest))
# The board-debugging fields, which qemu/board.py checks and applies.
BOARD_FIELDS = ("bootarg", "dtb", "dump_dtb", "flash", "reflash", "screenshot", "qemu")
