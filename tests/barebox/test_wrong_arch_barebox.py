"""A real barebox image booted as a target of another architecture is refused at once (one
line, exit 2) instead of a boot that never prints; on its own target it still boots.
BBV_BAREBOX_IMAGE is the image, BBV_BAREBOX_TARGET its target (default vexpress)."""

from __future__ import annotations

import os
import time

import pytest
from conftest import bbv, one_line_error

from barebox_virtio_cli.targets.catalog import load_catalog

IMAGE = os.environ.get("BBV_BAREBOX_IMAGE", "")
TARGET = os.environ.get("BBV_BAREBOX_TARGET", "vexpress")
pytestmark = [pytest.mark.barebox, pytest.mark.qemu,
              pytest.mark.skipif(not IMAGE, reason="BBV_BAREBOX_IMAGE (a barebox image) unset")]


def test_booted_as_another_arch_it_is_refused_before_qemu_starts():
    catalog = load_catalog()
    own = catalog.get(TARGET)
    others = sorted(name for name, t in catalog.targets.items() if t.arch != own.arch)
    assert others
    for other in others:
        started = time.monotonic()
        done = bbv("run", "-t", other, "--image", IMAGE, "--timeout", "60", "--exec", "version")
        one_line_error(done, 2, f"--image {os.path.realpath(IMAGE)}: is an image for",
                       f"target '{other}' is {catalog.get(other).bits}-bit")
        assert time.monotonic() - started < 10


def test_on_its_own_target_it_boots():
    done = bbv("run", "-t", TARGET, "--image", IMAGE, "--timeout", "120", "--exec", "version")
    assert done.returncode == 0, done.stderr
    assert "barebox" in done.stdout


def test_an_arm_image_booted_as_the_other_width_is_refused():
    catalog = load_catalog()
    own = catalog.get(TARGET)
    if own.arch != "arm":
        pytest.skip("the width of an ARM image is in its header; other images' is not")
    for other in sorted(n for n, t in catalog.targets.items()
                        if t.arch == "arm" and t.bits != own.bits):
        done = bbv("run", "-t", other, "--image", IMAGE, "--dry-run")
        one_line_error(done, 2, f"is an image for {own.bits}-bit arm and target '{other}' is "
                                f"{catalog.get(other).bits}-bit arm")
