"""Nothing lost on the virtio console with real barebox, quiet and with four busy loops on the
machine: every byte barebox prints (tens of KiB: devinfo, ls -l /dev, help, repeated) reaches a
`bbv console` client and a socat client of `bbv run --console`, identical to what the serial
console shows. Needs BBV_BAREBOX_IMAGE (and BBV_BAREBOX_TARGET unless it is a vexpress image)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import need
from console_helpers import cleanup_dir, short_dir
from console_load import Boot, busy_loops, stop_all

IMAGE = os.environ.get("BBV_BAREBOX_IMAGE")
TARGET = os.environ.get("BBV_BAREBOX_TARGET", "vexpress")
pytestmark = [pytest.mark.barebox, pytest.mark.qemu, need("socat"),
              pytest.mark.skipif(not IMAGE, reason="BBV_BAREBOX_IMAGE (a barebox image) unset")]


@pytest.mark.parametrize("client", ["bbv", "socat"])
@pytest.mark.parametrize("load", [0, 4])
def test_bbv_run_console_loses_nothing(client, load):
    where = short_dir()
    loops = busy_loops(load)
    boot = None
    try:
        boot = Boot("relay", TARGET, IMAGE, Path(where) / "c", client)
        boot.prompt()
        for _ in range(3):
            result = boot.measure()
            assert result.expected > 20_000, result  # tens of KiB came out on the serial console
            assert result.lost == 0, f"{result.lost} of {result.expected} bytes lost: " \
                f"{result.missing[:5]}"
            # barebox itself garbles a byte or two next to a poller warning under load
            assert result.identical or len(result.missing) <= 2 * result.warnings, result
    finally:
        stop_all(loops)
        if boot is not None:
            boot.close()
        cleanup_dir(where)


def test_a_late_client_gets_the_boot_output():
    """socat connecting after boot gets what barebox printed since it activated the console:
    from the autoboot countdown on (malta activates it at the first prompt, which bbv types)."""
    where = short_dir()
    boot = None
    try:
        boot = Boot("relay", TARGET, IMAGE, Path(where) / "c", "bbv")
        boot.prompt()
        # A live client (no replay) since just after QEMU started; under load it may connect
        # after barebox has begun, so it holds the tail of what a late client is replayed.
        early = boot.virtio.snapshot()
        late = subprocess.run(["socat", "-t", "1", f"UNIX-CONNECT:{where}/c", "-"], input=b"",
                              capture_output=True, timeout=60)
        assert early and late.stdout.endswith(early)  # replayed whole, in order
        assert b"barebox@" in late.stdout
        if TARGET != "malta":  # active from boot; on malta only from the first prompt
            assert b"stop autoboot" in late.stdout
    finally:
        if boot is not None:
            boot.close()
        cleanup_dir(where)
