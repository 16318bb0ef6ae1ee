"""`bbv replay DIR` as a service: the recorded run again (qemu/machine.Machine, WATCH: headless),
its serial transcript shown as it replays and compared with the recorded one (the virtio
console's too); --gdb halts it
for gdb (reverse debugging), --until stops it at an instruction count (QMP replay-break)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.debug.endpoint import qemu_arg
from barebox_virtio_cli.debug.session import announce_stub, stub_for_run
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.args import RunSpec
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.qemu.machine import WATCH, Machine, hint
from barebox_virtio_cli.run import recording
from barebox_virtio_cli.run.service import qemu_info
from barebox_virtio_cli.targets.catalog import load_catalog
from barebox_virtio_cli.targets.target import Target
from barebox_virtio_cli.util.lockfile import exclusive
from barebox_virtio_cli.util.paths import runtime_dir
from barebox_virtio_cli.util.signals import raising
from barebox_virtio_cli.util.status import say

WATCH_POLL = 0.2  # seconds between QMP queries of the replay's instruction count
STALL = 20.0  # seconds without a new instruction before a replay counts as stalled


@dataclass
class Comparison:
    recorded: int  # bytes the recording's serial transcript holds
    replayed: int
    first_difference: int | None  # byte offset; None: equal up to the shorter one

    @property
    def equal(self) -> bool:
        return self.first_difference is None and self.recorded == self.replayed


def compare(recorded: bytes, replayed: bytes) -> Comparison:
    """Where the replayed transcript first differs from the recorded one. Pure."""
    common = min(len(recorded), len(replayed))
    first = next((i for i in range(common) if recorded[i] != replayed[i]), None)
    return Comparison(len(recorded), len(replayed), first)


def describe(comparison: Comparison, recorded: bytes, what: str = "serial") -> str:
    """One line on how the replay's output (what: serial, virtio console) compares with the
    recording's. Pure."""
    if comparison.equal:
        return (f"the replay matches the recording: {comparison.recorded} bytes of {what} "
                "output, byte for byte")
    at = comparison.first_difference
    if at is None:
        return (f"the replay matches the recording up to where it stopped: "
                f"{comparison.replayed} of {comparison.recorded} bytes of {what} output")
    line = recorded[:at].count(b"\n") + 1
    return (f"the replay differs from the recording at byte {at} of the {what} output "
            f"(line {line})")


def gdb_warning(spec: RunSpec) -> str | None:
    """What gdb cannot do on this replay, said before it starts. Pure. A virtio console's
    port (virtconsole, even on a null chardev with no input) breaks QEMU 7.2's reverse
    execution: after it loads the snapshot to step back from, the replay runs on and never
    stops, and gdb hangs; a virtio-serial bus without the port steps back."""
    if spec.console is None:
        return None
    return ("warning: reverse execution (reverse-stepi, reverse-continue) does not work on a "
            "recording with a virtio console (QEMU 7.2: the replay never stops again and gdb "
            "hangs); breakpoints and forward stepping do")


def replay(directory: Path, gdb: str | None = None, until: int | None = None,
           qemu: str | None = None) -> int:
    """Replay the recording in DIR; 0 if it ran to its end (or to --until) and its serial
    output matches the recorded one."""
    directory = directory.absolute()
    record = recording.load(directory)
    try:
        target = load_catalog().get(record["target"])
    except BbvError:
        raise UsageError(f"{directory} was recorded on target '{record['target']}', which bbv "
                         "does not know here") from None
    info = qemu_info(target, qemu or record["qemu"]["binary"])
    recording.check_replayable(record, info)
    spec = recording.replay_spec(record, directory,
                                 runtime_dir() / f"{target.name}-{os.getpid()}.replay.console")

    def busy(pid: str) -> BbvError:
        return BbvError(f"{directory} is being replayed by another bbv (pid {pid}); wait for "
                        "it to finish")

    def unusable(exc: OSError) -> UsageError:
        return UsageError(f"{directory}: cannot write {recording.REPLAYED}/ in it "
                          f"({exc.strerror}), where each replay keeps its transcript; copy the "
                          "recording to a directory where you can write")

    try:
        spec.serial_log.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise unusable(exc) from None
    with exclusive(spec.serial_log.parent / "lock", busy, unusable):
        return _replay(directory, record, target, info, spec, gdb, until)


def _replay(directory: Path, record: dict, target: Target, info: QemuInfo, spec: RunSpec,
            gdb: str | None, until: int | None) -> int:
    """The replay itself, its transcript in DIR/replayed (held by this bbv alone)."""
    for transcript in (spec.serial_log, spec.serial_log.parent / recording.CONSOLE):
        transcript.unlink(missing_ok=True)  # the last replay's
    stub = None
    if gdb is not None:
        stub = stub_for_run(gdb, True)
        if (warning := gdb_warning(spec)) is not None:
            say(warning)
        spec.gdb, spec.gdb_wait = qemu_arg(stub), True
        spec.icount.snapshots = recording.snapshot_drive(directory)
    spec.qmp = runtime_dir() / f"{target.name}-{os.getpid()}.replay.qmp"  # bbv watches it
    machine = Machine(target, info, spec, WATCH, paused=stub is None,
                      console_log=str(directory / recording.REPLAYED / recording.CONSOLE)
                      if spec.console is not None else None)
    say(f"replaying {directory} ({target.name}, {record['image']})")
    messages: list[str] = []
    # Signalled: the machine stops QEMU and cleans up; bbv exits 128+N
    with raising(), machine:
        if stub is not None:
            announce_stub(target, spec.image, stub, True)
        errors = threading.Thread(target=_collect, args=(machine.proc.stderr, messages),
                                  daemon=True)
        errors.start()
        shown = threading.Thread(target=_show, args=(machine.proc.stdout,), daemon=True)
        shown.start()
        try:
            stopped_at = _watch(machine, until, stub is None)
        except BbvError:
            errors.join(2)
            if machine.running or not messages:
                raise
            raise BbvError(f"QEMU ended the replay at its start: {messages[-1]}"
                           f"{hint(chr(10).join(messages))}") from None
        if stopped_at is None:
            machine.proc.wait()
        else:
            say(f"stopped at instruction {stopped_at}")
            if stub is not None:
                say("gdb may attach now; the replay ends when gdb kills it")
                machine.proc.wait()
            else:
                machine.stop()
        shown.join(2)
        errors.join(2)
    return _verdict(directory, spec.serial_log, machine.proc.returncode, messages,
                    stopped_at is not None, debugged=stub is not None)


def _watch(machine: Machine, until: int | None, stalls: bool) -> int | None:
    """Let the replay go on (QMP replay-break at `until` first), and watch its instruction
    count: the count where it stopped at `until`, or None once QEMU has ended. A replay whose
    count stands still for STALL seconds waits for an event its log does not hold: a BbvError
    (stalls=False, under gdb: gdb holds it still)."""
    machine.connect_monitor()
    if until is not None:
        reply = machine.execute("replay-break", icount=until)
        if "error" in reply:
            raise UsageError(f"--until {until}: QEMU refused: {reply['error'].get('desc')}")
    if machine.paused:
        machine.execute("cont")
    last, since = -1, time.monotonic()
    while machine.running:
        with contextlib.suppress(Exception):  # QEMU ending meanwhile
            status = machine.execute("query-status").get("return", {})
            icount = machine.execute("query-replay").get("return", {}).get("icount", 0)
            if until is not None and status.get("status") == "paused":
                return icount
            if icount != last:
                last, since = icount, time.monotonic()
        if stalls and time.monotonic() - since > STALL:
            raise BbvError(f"the replay stalled at instruction {last}: QEMU waits for an event "
                           f"its log does not hold (for {STALL:g} s); the recording is "
                           "incomplete or holds input QEMU does not replay")
        time.sleep(WATCH_POLL)
    return None


def _verdict(directory: Path, replayed_log: Path, returncode: int, messages: list[str],
             stopped: bool, debugged: bool = False) -> int:
    text = "\n".join(messages)
    divergence = [m for m in messages if "replay" in m.lower() or "missing" in m.lower()]
    if divergence:
        say(f"error: the replay diverged: {divergence[0]}")
        return 1
    if debugged:  # reverse execution runs parts again, printing them again
        say("replayed under gdb: the serial output is not compared with the recording")
        return 0
    if returncode not in (0, None) and not stopped:
        last = messages[-1] if messages else f"exit status {returncode}"
        say(f"error: QEMU stopped the replay: {last}{hint(text)}")
        return 1
    status = 0
    for name, what in ((recording.SERIAL, "serial"), (recording.CONSOLE, "virtio console")):
        if not (directory / name).exists():
            continue  # a recording without a virtio console
        recorded = (directory / name).read_bytes()
        replayed_path = replayed_log.parent / name
        replayed = replayed_path.read_bytes() if replayed_path.exists() else b""
        comparison = compare(recorded, replayed)
        line = describe(comparison, recorded, what)
        if comparison.equal or (stopped and comparison.first_difference is None):
            say(line)
        else:
            say(f"error: {line}")
            status = 1
    return status


def _collect(stream, messages: list[str]) -> None:
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace").rstrip()
        messages.append(text.split(": ", 1)[-1] if text.startswith("qemu-system") else text)


def _show(stream) -> None:
    """The serial output as it replays; then the line ended (barebox's last prompt has no
    newline) and, on a terminal, its colours reset, so bbv's verdict starts a line of its own."""
    last = b"\n"
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        last = chunk
    ending = (b"\x1b[0m" if sys.stdout.isatty() else b"") + \
        (b"" if last.endswith(b"\n") else b"\n")
    if ending:
        sys.stdout.buffer.write(ending)
        sys.stdout.buffer.flush()
