"""build/record.py: the BuildRecord written as JSON and read back, forgivingly; the index that
finds a target's last build. Pure logic on files in tmp_path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from barebox_virtio_cli.build import record as buildrecord
from barebox_virtio_cli.build.record import RECORD_NAME, BuildRecord

pytestmark = pytest.mark.pure


def full(tmp_path: Path) -> BuildRecord:
    return BuildRecord(
        target="vexpress", arch="arm", defconfig="multi_v7_defconfig",
        kconfig=["CONFIG_VIRTIO_MMIO=y"], toolchain="arm-linux-gnueabihf-",
        toolchain_source="PATH", gcc="arm-linux-gnueabihf", gcc_version="12.2.0", ccache=True,
        src=tmp_path / "src", scope="target", goals=["images/barebox-dt-2nd.img"],
        image=tmp_path / "out" / "images" / "barebox-dt-2nd.img",
        images=[tmp_path / "out" / "images" / "barebox-dt-2nd.img"], seconds=12.5,
        progress={"full-target": {"steps": 40, "seconds": 12.5}})


def test_every_field_has_a_kind_to_read_it_back():
    assert list(buildrecord._KINDS) == [f.name for f in dataclasses.fields(BuildRecord)]


def test_written_record_reads_back_equal_and_is_indexed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    buildrecord.write_record(out, full(tmp_path))
    data = json.loads((out / RECORD_NAME).read_text())
    assert data["image"] == str(tmp_path / "out" / "images" / "barebox-dt-2nd.img")
    assert data["build_dir"] == str(out.resolve()) and data["complete"] is True
    assert buildrecord.read_record(out) == dataclasses.replace(full(tmp_path),
                                                               build_dir=out.resolve())
    assert buildrecord.recorded_dir("vexpress") == out.resolve()


def test_a_claimed_directory_is_incomplete_and_keeps_an_existing_record(tmp_path):
    buildrecord.mark(tmp_path, "malta")
    assert buildrecord.read_record(tmp_path) == BuildRecord("malta", tmp_path.resolve(),
                                                            complete=False)
    buildrecord.write_record(tmp_path, full(tmp_path))
    buildrecord.mark(tmp_path, "vexpress")
    assert buildrecord.read_record(tmp_path).complete
    buildrecord.mark(tmp_path, "vexpress", replace=True)
    assert not buildrecord.read_record(tmp_path).complete


def test_an_older_or_hand_edited_record_is_read_forgivingly(tmp_path):
    (tmp_path / RECORD_NAME).write_text(json.dumps({
        "target": "vexpress", "defconfig": "multi_v7_defconfig", "image": None,
        "kconfig": ["A=y", 3], "seconds": 7, "ccache": "yes", "src": 5, "unknown": 1}))
    record = buildrecord.read_record(tmp_path)
    assert (record.target, record.defconfig, record.image, record.kconfig, record.seconds,
            record.ccache, record.src, record.complete) == \
        ("vexpress", "multi_v7_defconfig", None, ["A=y"], 7.0, False, None, True)
    (tmp_path / RECORD_NAME).write_text("[1, 2]")
    assert buildrecord.read_record(tmp_path) is None
    assert buildrecord.read_record(tmp_path / "none") is None


def test_find_image_takes_the_recorded_image_of_that_target_only(tmp_path):
    out = tmp_path / "build-vexpress"
    image = out / "elsewhere.img"
    out.mkdir()
    image.write_bytes(b"x")
    buildrecord.write_record(out, dataclasses.replace(full(tmp_path), image=image))
    assert buildrecord.find_image("vexpress", "barebox-dt-2nd.img", tmp_path)[0] == image
    found, looked = buildrecord.find_image("malta", "barebox-dt-2nd.img", tmp_path)
    assert found is None and looked[-1] == tmp_path / "images" / "barebox-dt-2nd.img"
