"""bbv run --record / --deterministic and bbv replay: the generated QEMU command lines against
golden files (tests/golden/record, tests/golden/replay; regenerate with BBV_UPDATE_GOLDEN=1 and
review), what a recorded run refuses, and the transcript comparison."""

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT, TESTS
from qemu_helpers import synthetic_info

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.args import (
    DETERMINISTIC,
    RECORD,
    RECORD_TYPING_PACE,
    RECORD_TYPING_WINDOW,
    REPLAY,
    Icount,
    RunSpec,
    build_command,
    flatten,
    format_command,
    recorded,
)
from barebox_virtio_cli.run.recording import (
    check_new,
    check_room,
    devices,
    missing,
    replay_spec,
    spec_fields,
)
from barebox_virtio_cli.run.replay import compare, describe, gdb_warning
from barebox_virtio_cli.session.options import typing_pace, typing_window
from barebox_virtio_cli.targets.catalog import load_catalog
from barebox_virtio_cli.util.atomic import allocated, copy_sparse

pytestmark = pytest.mark.pure

CATALOG = load_catalog([ROOT / "configs"])
REC = Path("/work/rec,1")


def base_spec(target) -> RunSpec:
    return RunSpec(image=Path("/work/barebox/images") / target.image,
                   blks=[Path("/work/disks/a.img"), Path("/work/disks/b.img")], rng=1)


def render(name: str, mode: str) -> str:
    target = CATALOG.get(name)
    spec = recorded(base_spec(target), REC, mode)
    if mode == REPLAY:
        spec.icount.snapshots = REC / "replayed" / "snapshots.qcow2"
        spec.gdb, spec.gdb_wait = "tcp:127.0.0.1:1234", True
    return format_command(build_command(target, spec, synthetic_info(target.qemu))) + "\n"


@pytest.mark.parametrize("mode", [RECORD, REPLAY])
@pytest.mark.parametrize("name", CATALOG.names())
def test_recorded_command_line_matches_golden_file(name, mode):
    golden = TESTS / "golden" / mode / f"{name}.sh"
    text = render(name, mode)
    if os.environ.get("BBV_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with BBV_UPDATE_GOLDEN=1 and review"
    assert text == golden.read_text()


def test_record_and_replay_differ_only_in_the_rr_mode_and_the_transcript():
    target = CATALOG.get("vexpress")
    lines = [flatten(build_command(target, recorded(base_spec(target), REC, mode),
                                   synthetic_info(target.qemu))) for mode in (RECORD, REPLAY)]
    changed = [(a, b) for a, b in zip(*lines, strict=True) if a != b]
    assert changed == [
        ("stdio,id=serial0,signal=off,logfile=/work/rec,,1/serial.log",
         "stdio,id=serial0,signal=off,logfile=/work/rec,,1/replayed/serial.log"),
        ("shift=auto,rr=record,rrfile=/work/rec,,1/replay.bin",
         "shift=auto,rr=replay,rrfile=/work/rec,,1/replay.bin")]


@pytest.mark.parametrize("name, spare", [("vexpress", []), ("riscv64", []),
                                         ("malta", ["-serial", "null"] * 2)])
def test_a_recorded_console_takes_the_first_serial_slot_no_device_uses(name, spare):
    """QEMU records the input of -serial chardevs only; the slots before the console's get
    null chardevs, so that no UART of the machine is wired to it."""
    target = CATALOG.get(name)
    spec = replace(base_spec(target), console=Path("/tmp/c.sock"))
    argv = flatten(build_command(target, recorded(spec, REC), synthetic_info(target.qemu)))
    at = argv.index("chardev:serial0")
    serials = [argv[i + 1] for i in range(at - 1, len(argv)) if argv[i] == "-serial"]
    assert serials == ["chardev:serial0", *spare[1::2], "chardev:con0"]
    plain = flatten(build_command(target, spec, synthetic_info(target.qemu)))
    assert "chardev:con0" not in plain


@pytest.mark.parametrize("serial, chardev", [
    ("file:/work/rec,1/serial.log", "file,id=serial0,path=/work/rec,,1/serial.log"),
    ("unix:/s.sock,server=on,wait=off",
     "socket,id=serial0,path=/s.sock,server=on,wait=off,logfile=/work/rec,,1/serial.log"),
])
def test_an_attached_recording_keeps_its_serial_line_as_a_recorded_chardev(serial, chardev):
    target = CATALOG.get("vexpress")
    spec = replace(recorded(base_spec(target), REC), serial=serial)
    argv = flatten(build_command(target, spec, synthetic_info(target.qemu)))
    assert argv[argv.index("-chardev") + 1] == chardev
    assert argv[argv.index("-serial") + 1] == "chardev:serial0"


@pytest.mark.parametrize("rtc, refused", [
    ("clock=rt", "clock=rt cannot be recorded"), ("base=localtime", "QEMU refuses to record it"),
    ("base=2020-01-01T00:00:00,clock=rt", "clock=rt cannot be recorded"),
    ("clock=vm", None), ("base=2020-01-01T00:00:00", None), ("clock=host", None),
    ("base=utc,clock=vm", None)])
def test_rtc_values_a_replay_cannot_follow_are_refused(rtc, refused):
    target = CATALOG.get("vexpress")
    spec = replace(base_spec(target), qemu_args=["-rtc", rtc])
    info = synthetic_info(target.qemu)
    for mode in (RECORD, REPLAY):
        if refused is None:
            argv = flatten(build_command(target, recorded(spec, REC, mode), info))
            assert argv[argv.index("-rtc") + 1] == rtc
            continue
        with pytest.raises(UsageError) as exc:
            build_command(target, recorded(spec, REC, mode), info)
        assert f"--qemu-arg -rtc {rtc}: " in str(exc.value) and refused in str(exc.value)
    deterministic = replace(spec, icount=Icount())  # guest time stays the same: accepted
    assert "-rtc" in flatten(build_command(target, deterministic, info))


def test_deterministic_is_icount_without_record_replay():
    target = CATALOG.get("vexpress")
    argv = flatten(build_command(target, replace(base_spec(target), icount=Icount()),
                                 synthetic_info(target.qemu)))
    assert argv[argv.index("-icount") + 1] == DETERMINISTIC == "shift=4,align=off,sleep=off"
    assert "mon:stdio" in argv and "blkreplay" not in " ".join(argv)


@pytest.mark.parametrize("change, message", [
    (dict(fs=[("share", Path("/tmp"))]), "virtio 9p cannot be recorded"),
    (dict(graphic=True), "--graphic cannot be recorded"),
    (dict(flash=Path("/tmp/f.img")), "--flash cannot be recorded"),
])
def test_what_cannot_be_recorded_is_refused_in_one_line(change, message):
    target = CATALOG.get("vexpress")
    spec = recorded(replace(base_spec(target), **change), REC)
    with pytest.raises(UsageError) as exc:
        build_command(target, spec, synthetic_info(target.qemu))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_recorded_nic_gets_the_replay_filter_and_no_default_nic_is_added():
    target = CATALOG.get("vexpress")
    info = synthetic_info(target.qemu)
    with_net = flatten(build_command(target, recorded(replace(base_spec(target), net=True),
                                                      REC), info))
    assert with_net[with_net.index("-object") + 1] == "filter-replay,id=replay0,netdev=net0"
    # transmits completed on the guest clock, or the replay diverges at the first packet sent
    nic = next(a for a in with_net if a.startswith("virtio-net-"))
    assert nic.split(",")[1:4] == ["netdev=net0", "id=nic0", "tx=timer"]
    assert "none" not in with_net[with_net.index("-icount"):]
    without = flatten(build_command(target, recorded(base_spec(target), REC), info))
    assert "-object" not in without and without[-3:] == ["-net", "none", "-no-reboot"]
    plain = flatten(build_command(target, replace(base_spec(target), net=True), info))
    assert "-object" not in plain and "-icount" not in plain and "-no-reboot" not in plain
    assert not any("tx=timer" in a for a in plain)
    # barebox's reset ends a recording (and its replay) where barebox has no poweroff
    assert "-no-reboot" in with_net


def test_typing_is_paced_only_while_recording():
    spec = base_spec(CATALOG.get("vexpress"))
    assert typing_pace(spec) == 0
    assert typing_pace(replace(spec, icount=Icount())) == 0
    assert typing_pace(recorded(spec, REC)) == RECORD_TYPING_PACE == 0.05
    assert typing_pace(recorded(spec, REC, REPLAY)) == 0
    assert typing_window(spec) == typing_window(recorded(spec, REC, REPLAY)) == 0
    assert typing_window(recorded(spec, REC)) == RECORD_TYPING_WINDOW == 8


def test_the_record_rebuilds_the_same_spec_for_replay():
    spec = recorded(replace(base_spec(CATALOG.get("vexpress")), memory="512M",
                            bootargs=["a=b"]), REC)
    again = replay_spec({"spec": spec_fields(spec, REC)}, REC)
    assert again == recorded(spec, REC, REPLAY)
    assert devices(spec) == {"blk": 2, "rng": 1}


def test_replay_under_gdb_warns_of_reverse_execution_only_with_a_virtio_console():
    # measured on QEMU 7.2 (docs/record-replay.md, Reverse debugging)
    plain = recorded(base_spec(CATALOG.get("vexpress")), REC)
    console = recorded(replace(base_spec(CATALOG.get("vexpress")),
                               console=Path("/run/bbv/vexpress.console")), REC)
    assert gdb_warning(replay_spec({"spec": spec_fields(plain, REC)}, REC)) is None
    warning = gdb_warning(replay_spec({"spec": spec_fields(console, REC)}, REC,
                                      Path("/run/bbv/replay.console")))
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning: reverse execution")
    assert "virtio console" in warning and "breakpoints and forward stepping do" in warning


def test_record_dir_must_be_new_or_empty(tmp_path):
    assert check_new(tmp_path / "new") == tmp_path / "new"
    assert check_new(tmp_path) == tmp_path  # empty
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds files that are not a recording"):
        check_new(tmp_path)
    with pytest.raises(UsageError, match="is not a directory"):
        check_new(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("recorded_text, replayed, line", [
    (b"ab\ncd", b"ab\ncd", "matches the recording: 5 bytes of serial output, byte for byte"),
    (b"ab\ncd", b"ab\n", "matches the recording up to where it stopped: 3 of 5 bytes"),
    (b"ab\ncd", b"ab\nxd", "differs from the recording at byte 3 of the serial output (line 2)"),
])
def test_transcripts_compared(recorded_text, replayed, line):
    assert line in describe(compare(recorded_text, replayed), recorded_text)


@pytest.mark.parametrize("args", [["-icount", "shift=3"], ["--icount", "shift=auto"],
                                  ["-icount shift=3"]])
@pytest.mark.parametrize("mode", [RECORD, REPLAY, None])
def test_a_qemu_arg_giving_icount_again_is_refused(args, mode):
    target = CATALOG.get("vexpress")
    spec = replace(base_spec(target), qemu_args=args)
    spec = replace(spec, icount=Icount()) if mode is None else recorded(spec, REC, mode)
    with pytest.raises(UsageError) as exc:
        build_command(target, spec, synthetic_info(target.qemu))
    given = "--deterministic" if mode is None else "--record"
    assert f"--qemu-arg {args[0]}: {given}" in str(exc.value) and "\n" not in str(exc.value)
    # without -icount of bbv's own, the same --qemu-arg is the user's to give
    build_command(target, replace(spec, icount=None), synthetic_info(target.qemu))


def test_a_sparse_disk_is_copied_with_its_holes(tmp_path):
    source, copy = tmp_path / "big.img", tmp_path / "copy.img"
    with open(source, "wb") as fh:
        fh.write(b"head" * 1024)
        fh.seek(256 << 20)
        fh.write(b"\0" * (4 << 20) + b"middle")  # zeros written out: a hole in the copy
        fh.truncate(1 << 30)
    copy_sparse(source, copy)
    assert copy.stat().st_size == 1 << 30
    with open(copy, "rb") as fh:
        assert fh.read(4096) == b"head" * 1024
        fh.seek((256 << 20) + (4 << 20))
        assert fh.read(6) == b"middle"
    assert allocated(copy) <= 2 << 20 < allocated(source)


def test_disk_copies_that_would_not_fit_are_refused(tmp_path, monkeypatch):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"x" * (3 << 20))
    rec = tmp_path / "rec"
    check_room(tmp_path, [disk])  # room enough on the test's file system
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(9, 9, 2 << 20))
    with pytest.raises(BbvError) as exc:
        check_room(rec, [disk, disk])
    assert "disk copies need 6.0 MiB" in str(exc.value) and "2.0 MiB free" in str(exc.value)


def test_a_recording_lacking_a_file_names_it(tmp_path):
    record = {"spec": {"blks": ["disks/blk0.img"]}}
    assert missing(record, tmp_path) == ["serial.log", "disks/blk0.img"]
    (tmp_path / "serial.log").write_bytes(b"")
    (tmp_path / "disks").mkdir()
    (tmp_path / "disks" / "blk0.img").write_bytes(b"")
    assert missing(record, tmp_path) == []
