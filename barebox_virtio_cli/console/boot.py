"""`bbv run` in the foreground or scripted, with bbv serving the virtio console (if asked for)
for as long as QEMU runs: the server first, so that QEMU's argv names its FIFOs."""

from __future__ import annotations

from collections.abc import Callable

from barebox_virtio_cli.console.server import served_console
from barebox_virtio_cli.qemu.args import RunSpec, build_command, flatten
from barebox_virtio_cli.qemu.probe import QemuInfo
from barebox_virtio_cli.targets.catalog import Target


def boot(target: Target, info: QemuInfo, spec: RunSpec, script, console_log: str | None,
         announce: Callable[[Target, QemuInfo, RunSpec], None]) -> int:
    """The exit status: the script's verdict, or QEMU's (128+N after signal N)."""
    with served_console(spec, console_log):
        argv = flatten(build_command(target, spec, info))
        if script is not None:
            from barebox_virtio_cli.session.options import run_script

            return run_script(target, info, spec, argv, script)
        announce(target, info, spec)
        from barebox_virtio_cli.console.serial import foreground_serial
        from barebox_virtio_cli.qemu.process import run_foreground

        return run_foreground(argv, foreground_serial(target, info, spec))
