"""A recording of `bbv run --record DIR`, replayed by `bbv replay DIR`: the directory and what
it holds.

    DIR/record.json   bbv's record of the run (target, image and its sha256, QEMU binary and
                      version, devices, the run's options), written atomically (util/jsonfile)
    DIR/replay.bin    QEMU's replay log (-icount ...,rr=record,rrfile=)
    DIR/disks/blkN.img  each --blk image as it was when the recording started
    DIR/command.sh    the QEMU command line that recorded
    DIR/serial.log    what the serial port printed (QEMU's chardev logfile)
    DIR/console.log   what the virtio console printed (bbv's console server), if it had one
    DIR/replayed/     the last replay's transcripts, compared with serial.log and console.log
                      (and its lock: one replay of a recording at a time)

The user's images may change afterwards: the recording boots its own copies, each on a
temporary overlay (qemu/args.drive_groups), so they stay as they were at the start."""

from __future__ import annotations

import hashlib
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.args import (
    REPLAY,
    EnvEntry,
    RunSpec,
    build_command,
    format_command,
    opt_value,
    recorded,
)
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.targets.target import Target
from barebox_virtio_cli.util.atomic import allocated, copy_sparse, write_text
from barebox_virtio_cli.util.jsonfile import read_object, write_json
from barebox_virtio_cli.util.signals import Signalled, stop_line_last, stopped
from barebox_virtio_cli.util.status import say

FORMAT = 1
RECORD_FILE, LOG, DISKS, COMMAND = "record.json", "replay.bin", "disks", "command.sh"
SERIAL, CONSOLE, REPLAYED = "serial.log", "console.log", "replayed"


def check_new(directory: Path) -> Path:
    """--record DIR: a new or empty directory; never one holding anything else."""
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--record {directory}: exists and is not a directory; choose a new "
                         "directory")
    if directory.is_dir() and any(directory.iterdir()):
        what = "a recording already" if (directory / RECORD_FILE).exists() else \
            "files that are not a recording"
        raise UsageError(f"--record {directory}: holds {what}; choose a new or empty directory "
                         "(bbv never writes over one)")
    if not directory.parent.is_dir():
        raise UsageError(f"--record {directory}: directory {directory.parent} does not exist")
    return directory


def begin(directory: Path, target: Target, info: QemuInfo, spec: RunSpec,
          attach: bool = False) -> RunSpec:
    """Make the recording's directory: the disks copied, the command line and record written;
    the spec QEMU records with (its own disk copies, the replay log, the serial transcript).
    Stopped or failed on the way, it removes what it made."""
    spec_recorded = recorded(spec, directory)
    if attach:  # the serial line into a file, QMP: the attached run's command line
        from barebox_virtio_cli.console.attach import attach_command

        groups = attach_command(target, info, spec_recorded)
    else:
        groups = build_command(target, spec_recorded, info)
    command = format_command(groups)  # checks it, first
    made = not directory.exists()
    try:
        (directory / DISKS).mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"--record {directory}: cannot make it ({exc.strerror}); choose a "
                         "directory where you can write") from None
    try:
        check_room(directory, spec.blks)  # where DIR is: once it can be made
        for blk, copy in zip(spec.blks, spec_recorded.blks, strict=True):
            copy_sparse(blk, copy)
        write_text(directory / COMMAND, command + "\n")
        write_json(directory / RECORD_FILE, {
            "format": FORMAT, "target": target.name,
            "image": str(spec.image), "image_sha256": sha256(spec.image),
            "qemu": {"binary": info.binary, "version": ".".join(map(str, info.version))},
            "devices": devices(spec), "blks": [str(b) for b in spec.blks],
            "spec": spec_fields(spec_recorded, directory),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exit_status": None,
        }, indent=2)
    except BaseException:
        discard(directory, made)
        raise
    return spec_recorded


def check_room(directory: Path, blks: list[Path]) -> None:
    """The disk copies (their allocated blocks: holes stay holes) must fit where DIR is."""
    need = sum(allocated(blk) for blk in blks)
    free = shutil.disk_usage(directory).free
    if need > free:
        raise BbvError(f"--record {directory}: the disk copies need {_size(need)}, and its file "
                       f"system has {_size(free)} free; record into a directory with more room")


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def discard(directory: Path, made: bool) -> None:
    """Remove what a recording that never started left: DIR itself if bbv made it, else what
    bbv put in it (check_new: it was empty)."""
    if made:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for path in directory.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def finish(directory: Path, status: int) -> None:
    """The run's exit status into the record (a record without one was interrupted)."""
    record = read_object(directory / RECORD_FILE) or {}
    record["exit_status"] = status
    write_json(directory / RECORD_FILE, record, indent=2)


@stop_line_last()
def keeping_status(directory: Path, made: bool, run: Callable[[], int]) -> int:
    """Run the recorded boot; its exit status (or a signal's 128+N) into the record. A run
    that ended (or was stopped) before QEMU started its log leaves no recording (discard);
    one whose QEMU records on (--keep-running) gets no status: QEMU's exit ends it."""
    status = None
    try:
        status = run()
        return status
    except (Signalled, KeyboardInterrupt) as exc:
        status = stopped(exc).exit_status
        raise
    finally:
        replay = f"bbv replay {shlex.quote(str(directory))}"
        if not (directory / LOG).exists():
            discard(directory, made)
        elif (pid := still_recording(directory)) is not None:
            say(f"QEMU (pid {pid}) records into {directory} until it exits (barebox's "
                f"poweroff, or kill {pid}); then replay it with: {replay}")
        else:
            if status is not None:
                finish(directory, status)
            say(f"recording in {directory}; replay it with: {replay}")


def handed_over(directory: Path, pid: int) -> None:
    """--keep-running: QEMU, pid, records on after bbv has left; a replay waits for its end."""
    record = read_object(directory / RECORD_FILE) or {}
    record["recording_pid"] = pid
    write_json(directory / RECORD_FILE, record, indent=2)


def still_recording(directory: Path, record: dict | None = None) -> int | None:
    """The pid of the QEMU that still records into DIR (handed over), else None."""
    if record is None:
        record = read_object(directory / RECORD_FILE) or {}
    pid = record.get("recording_pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if f"rrfile={opt_value(str(directory / LOG))}".encode() in argv else None


def snapshot_drive(directory: Path) -> Path:
    """An empty qcow2 file where QEMU keeps the VM snapshots reverse debugging loads."""
    from barebox_virtio_cli.images.create import create_qcow2

    path = directory / REPLAYED / "snapshots.qcow2"
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    create_qcow2(path)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def devices(spec: RunSpec) -> dict[str, int]:
    """How many virtio devices of each kind the run has."""
    counts = {"blk": len(spec.blks), "rng": spec.rng, "console": int(spec.console is not None),
              "input": int(spec.input), "net": int(spec.net), "9p": len(spec.fs)}
    return {kind: n for kind, n in counts.items() if n}


def spec_fields(spec: RunSpec, directory: Path) -> dict:
    """What a replay needs to build the same command line; disks relative to the recording."""
    return {
        "image": str(spec.image), "blks": [str(b.relative_to(directory)) for b in spec.blks],
        "rng": spec.rng, "console": spec.console is not None, "input": spec.input,
        "net": spec.net, "port_forwards": spec.port_forwards,
        "fs": [[tag, str(path)] for tag, path in spec.fs], "memory": spec.memory,
        "cpu": spec.cpu, "machine": spec.machine,
        "env": [[e.path, e.value, e.is_file] for e in spec.env], "bootargs": spec.bootargs,
        "dtb": None if spec.dtb is None else str(spec.dtb), "firmware": spec.firmware,
        "qemu_args": spec.qemu_args,
    }


# what a replay reads from a record, with its type
RECORD_KEYS = {"target": str, "image": str, "image_sha256": str, "qemu": dict, "spec": dict}
QEMU_KEYS = {"binary": str, "version": str}
SPEC_KEYS = {"image": str, "blks": list, "rng": int, "env": list, "bootargs": list,
             "qemu_args": list}


def load(directory: Path) -> dict:
    """bbv replay DIR: the record, or one line saying DIR is not a recording or a damaged one."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory; give a directory made by "
                         "'bbv run --record'")
    path, log = directory / RECORD_FILE, directory / LOG
    if not path.is_file() or not log.is_file():
        raise UsageError(f"{directory} is not a recording (no {RECORD_FILE} and {LOG} from "
                         "'bbv run --record')")
    record = read_object(path)
    pid = None if record is None else still_recording(directory, record)
    if pid is not None:
        raise UsageError(f"{directory} is still being recorded by QEMU (pid {pid}, bbv run "
                         f"--keep-running); end it (barebox's poweroff, or kill {pid}), then "
                         "replay it")
    damage = "not a JSON object" if record is None else _damage(record)
    if damage is None and log.stat().st_size == 0:
        path, damage = log, "empty: the recording stopped before QEMU wrote its log"
    if damage is not None:
        raise UsageError(f"{path} is damaged ({damage}); record the run again with "
                         "'bbv run --record'")
    gone = missing(record, directory)
    if gone:
        raise UsageError(f"{directory} is an incomplete recording: {gone[0]} is missing; record "
                         "the run again with 'bbv run --record'")
    return record


def missing(record: dict, directory: Path) -> list[str]:
    """The files a replay reads that the recording lacks (relative to it)."""
    wanted = [SERIAL, *([CONSOLE] if record["spec"].get("console") else []),
              *map(str, record["spec"]["blks"])]
    return [name for name in wanted if not (directory / name).is_file()]


def _damage(record: dict) -> str | None:
    """What a record lacks for a replay (a key missing or of another type), or None. Pure."""
    if record.get("format") != FORMAT:
        return f"format {record.get('format')!r}, bbv reads format {FORMAT}"
    for where, keys, fields in (("", RECORD_KEYS, record),
                                ("qemu.", QEMU_KEYS, record.get("qemu")),
                                ("spec.", SPEC_KEYS, record.get("spec"))):
        for key, kind in keys.items():
            if not isinstance(fields.get(key), kind):
                return f"'{where}{key}' missing or not a {kind.__name__}"
    return None


def replay_spec(record: dict, directory: Path, console: Path | None = None) -> RunSpec:
    """The recorded run's spec, replaying: the same devices on the recording's disks (a
    virtio console on the given socket path)."""
    fields = record["spec"]
    return recorded(RunSpec(
        image=Path(fields["image"]), blks=[directory / b for b in fields["blks"]],
        rng=fields["rng"], console=console if fields.get("console") else None,
        input=fields.get("input", False), net=fields.get("net", False),
        port_forwards=fields.get("port_forwards", []),
        fs=[(tag, Path(path)) for tag, path in fields.get("fs", [])],
        memory=fields.get("memory"), cpu=fields.get("cpu"), machine=fields.get("machine"),
        env=[EnvEntry(*e) for e in fields["env"]], bootargs=fields["bootargs"],
        dtb=None if fields.get("dtb") is None else Path(fields["dtb"]),
        firmware=fields.get("firmware"), qemu_args=fields["qemu_args"]), directory, REPLAY)


def check_replayable(record: dict, info: QemuInfo) -> None:
    """A replay diverges on another QEMU or another image: refused in one line."""
    recorded, have = record["qemu"]["version"], ".".join(map(str, info.version))
    if recorded != have:
        raise UsageError(f"recorded with QEMU {recorded}, and {info.binary} is {have}: the replay "
                         "would diverge; replay with the QEMU that recorded (--qemu BINARY)")
    image = Path(record["image"])
    if not image.is_file():
        raise UsageError(f"the recorded image {image} is gone; a replay needs the same image")
    if sha256(image) != record["image_sha256"]:
        raise UsageError(f"{image} changed since the recording (sha256 differs): the replay "
                         "would diverge; replay with the image that recorded")
