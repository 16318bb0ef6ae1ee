"""Running gdb for `bbv gdb`: which gdb, its command line, and the child process (signals
forwarded, terminal restored, no gdb left behind)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from barebox_virtio_cli.debug.elf import Elf
from barebox_virtio_cli.debug.endpoint import gdb_remote
from barebox_virtio_cli.debug.symbols import Symbols
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.processes import TerminalGuard, start_child, stop
from barebox_virtio_cli.util.signals import IGNORE, announce_stop, exit_status, handling
from barebox_virtio_cli.util.sockets import Endpoint

HELPER = Path(__file__).with_name("gdbhelper.py")
GDB_PACKAGE = "gdb-multiarch"


def find_gdb(prefixes: list[str], arch: str) -> str:
    """gdb-multiarch, else `<prefix>gdb` for the build's compiler or the target's prefixes."""
    names = ["gdb-multiarch", *(f"{p}gdb" for p in prefixes)]
    for name in names:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else on_path(name)
        if found:
            return found
    raise BbvError(f"no gdb for {arch}: install gdb-multiarch (Debian/Ubuntu: apt install "
                   f"{GDB_PACKAGE}) or put a cross gdb ({', '.join(names[1:3])}, ...) on PATH")


# QEMU's MIPS stub sends no target description: gdb must know the CPU before it connects
# ("Truncated register 39 in remote 'g' packet" otherwise).
NEEDS_ARCH = {"mips"}


def arch_commands(elf: Elf) -> list[str]:
    """gdb commands to run before connecting, for CPUs whose stub does not describe itself."""
    if elf.machine not in NEEDS_ARCH:
        return []
    return [f"set architecture {elf.machine}",
            f"set endian {'little' if elf.little_endian else 'big'}"]


def gdb_argv(gdb: str, endpoint: Endpoint, user_args: list[str],
             setup: list[str] = ()) -> list[str]:
    """Connect, then gdbhelper.py loads the symbols; the user's arguments come last, so their
    -ex commands (`break do_version`) see the symbols."""
    before = [arg for command in setup for arg in ("-ex", command)]
    return [gdb, "-q", *before, "-ex", f"target remote {gdb_remote(endpoint)}",
            "-x", str(HELPER), *user_args]


def helper_env(symbols: Symbols, image: Path | None, offset: int | None = None) -> dict[str, str]:
    """gdbhelper.py's configuration; `offset` (from iomem) skips finding barebox's."""
    config = {"pythonpath": str(Path(__file__).resolve().parents[2]),
              "barebox": str(symbols.barebox), "pbl": str(symbols.pbl) if symbols.pbl else None,
              "image": str(image) if image else None, "offset": offset}
    return {**os.environ, "BBV_GDB_HELPER": json.dumps(config)}


def run_gdb(argv: list[str], env: dict[str, str]) -> int:
    """gdb in the foreground. Ctrl-C belongs to gdb (it interrupts the target), so bbv ignores
    SIGINT meanwhile; SIGTERM and SIGHUP stop gdb and bbv exits 128+N. gdb gets SIGHUP for
    both: it then detaches cleanly, so barebox runs on (gdb 13 answers SIGTERM with a Python
    traceback); SIGTERM and SIGKILL follow if it does not end."""
    guard = TerminalGuard()
    got: list[int] = []
    proc = start_child(argv, env=env)

    def on_signal(signum, _frame):
        got.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGHUP)

    try:
        with handling((signal.SIGTERM, signal.SIGHUP), on_signal), \
                handling((signal.SIGINT,), IGNORE):
            returncode = proc.wait()
    finally:
        stop(proc)
        guard.restore()
    return announce_stop(got[0]) if got else exit_status(returncode)
