"""`bbv build` on a real barebox tree (BBV_BAREBOX_SRC), then `bbv run --dry-run` boots what it
built. Incremental in SRC/build-vexpress: the first run takes minutes, later ones seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import bbv, need

SRC = os.environ.get("BBV_BAREBOX_SRC")
pytestmark = [
    pytest.mark.barebox,
    pytest.mark.skipif(not SRC, reason="BBV_BAREBOX_SRC (a barebox source tree) not set"),
    need("make", "bison", "flex", "arm-linux-gnueabihf-gcc", "qemu-system-arm"),
]


def test_build_vexpress_then_run_names_the_fresh_image():
    src = Path(SRC).resolve()
    done = bbv("build", "vexpress", "--src", str(src), cwd=src, timeout=1800)  # a whole build
    assert done.returncode == 0, done.stderr[-2000:]
    out = src / "build-vexpress"
    image = out / "images" / "barebox-dt-2nd.img"
    record = json.loads((out / "bbv-build.json").read_text())
    assert record["image"] == str(image) and image.stat().st_size > 100_000
    config = (out / ".config").read_text()
    for symbol in ("VIRTIO_INPUT", "DRIVER_NET_VIRTIO", "VIRTIO_MMIO"):
        assert f"CONFIG_{symbol}=y" in config
    ran = bbv("run", "--target", "vexpress", "--dry-run", cwd=src)
    assert ran.returncode == 0, ran.stderr
    assert f"-kernel {image}" in ran.stdout
