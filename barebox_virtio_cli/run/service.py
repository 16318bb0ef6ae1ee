"""`bbv run` as a service: a RunRequest checked against this machine and turned into a QEMU
command line, then printed (dry run) or booted in the foreground, attached to the virtio
console, or as a scripted session. Used by commands/run.py, commands/export.py and quickstart."""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.console.serial import foreground_serial
from barebox_virtio_cli.debug.endpoint import qemu_arg
from barebox_virtio_cli.debug.session import announce_stub, stub_for_run
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.inuse import check_distinct
from barebox_virtio_cli.qemu import machine as qm
from barebox_virtio_cli.qemu.args import (
    Icount,
    RunSpec,
    activation_command,
    boot_source,
    build_command,
    console_activation,
    format_command,
    fw_cfg_usable,
    recorded,
    spec_warnings,
)
from barebox_virtio_cli.qemu.board import BoardOptions, probe_given
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.qemu.machine import PTY, Machine
from barebox_virtio_cli.qemu.probe import find_binary, probe
from barebox_virtio_cli.run import inputs, recording
from barebox_virtio_cli.run.request import BOARD_FIELDS, RunRequest
from barebox_virtio_cli.session.options import run_script, script_from, session
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util import validate
from barebox_virtio_cli.util.status import say

# Everything decided before QEMU starts (a plain tuple: a NamedTuple costs start-up).
Prepared = tuple[Target, QemuInfo, RunSpec]


def qemu_info(target: Target, binary: str | None = None) -> QemuInfo:
    """The target's QEMU, or --qemu BINARY, probed (and cached)."""
    if binary is not None:
        return probe_given(binary)

    return probe(find_binary(target.qemu, target.qemu_package))


def prepare(request: RunRequest, image_optional: bool = False,
            check_locks: bool = True) -> Prepared:
    """Everything `bbv run` checks and decides before QEMU starts. image_optional: no image
    is needed (--dump-dtb, a --flash file that holds one already); check_locks=False where no
    QEMU starts here (bbv export): no image locks or host ports are checked then."""
    for option, values in (("--image", [request.image]), ("--blk", request.blk),
                           ("--fs", request.fs), ("--firmware", [request.firmware]),
                           ("--dump-dtb", [request.dump_dtb]), ("--dtb", [request.dtb]),
                           ("--flash", [request.flash]), ("--screenshot", [request.screenshot]),
                           ("--console-log", [request.console_log]),
                           ("--junit", [request.junit])):
        validate.check_not_empty(option, values)
    target = load_catalog().resolve(request.target, request.arch)
    memory = validate.parse_memory(request.memory) if request.memory is not None else None
    check_distinct([Path(b) for b in request.blk])
    info = qemu_info(target, request.qemu)
    machine = validate.check_machine(request.machine, info.machines, info.binary) \
        if request.machine is not None else _check_target_machine(target, info, request.qemu)
    cpu = validate.check_cpu(request.cpu, info.cpus, info.binary) if request.cpu is not None \
        else None
    console = request.console
    spec = RunSpec(
        image=_image(target, request.image, image_optional),
        blks=[inputs.check_block_image(Path(b), request.snapshot, check_locks)
              for b in request.blk],
        rng=request.rng,
        console=None if console is None else inputs.check_console_path(
            Path(console) if console else inputs.default_console_path(target)),
        input=request.input, net=request.net,
        port_forwards=[inputs.port_forward(p, check_free=check_locks and request.net)
                       for p in request.port_forward],  # without --net: args.py says so
        fs=[inputs.parse_fs(f, i) for i, f in enumerate(request.fs)],
        env=[inputs.parse_env(e) for e in request.env],
        memory=memory, cpu=cpu, machine=machine,
        snapshot=request.snapshot, graphic=request.graphic,
        firmware=inputs.find_firmware(target, info, request.firmware),
        qemu_args=list(request.qemu_arg),
        gdb=_qemu_gdb_arg(request), gdb_wait=request.gdb_wait,
        icount=Icount() if request.deterministic else None,
    )
    return target, info, spec


def _check_target_machine(target: Target, info: QemuInfo, given: str | None) -> None:
    """The target's machine is one this QEMU has: --qemu may name one for another arch."""
    if not info.machines or target.machine.split(",", 1)[0] in info.machines:
        return None
    binary = Path(info.binary).name
    where = f"--qemu {given}: " if given else ""
    raise UsageError(f"{where}{binary} has no machine '{target.machine}', which target "
                     f"'{target.name}' boots; give a {target.qemu} (the target's QEMU), or "
                     "another target (bbv targets)")


def _image(target: Target, image: str | None, optional: bool) -> Path | None:
    try:
        return inputs.resolve_image(target, image, Path.cwd())
    except BbvError:
        if image is None and optional:
            return None
        raise


def _prepare_board(request: RunRequest, attach: bool):
    """prepare() with the board-debugging options (qemu/board.py) checked and applied:
    (target, info, spec, board)."""
    if not request.graphic and not any(getattr(request, name) for name in BOARD_FIELDS):
        target, info, spec = prepare(request)  # nothing for qemu/board.py to do (start-up)
        _warn(target, spec)
        return target, info, spec, None

    board = BoardOptions(**{name: getattr(request, name) for name in BOARD_FIELDS})
    board.check_combination(bool(request.exec or request.expect), attach)
    target, info, spec = prepare(request, board.image_optional())
    board.apply(target, info, spec)
    _warn(target, spec)
    return target, info, spec, board


def _warn(target: Target, spec: RunSpec) -> None:
    for warning in spec_warnings(target, spec):
        say(f"warning: {warning}")


def _qemu_gdb_arg(request: RunRequest) -> str | None:
    stub = _gdb_stub(request)
    return qemu_arg(stub) if stub else None


def _gdb_stub(request: RunRequest):
    """The gdb stub's Endpoint (util/sockets.py) for --gdb/--gdb-wait, else None."""
    if request.gdb is None and not request.gdb_wait:
        return None

    return stub_for_run(request.gdb, request.gdb_wait)


def _checked(request: RunRequest):
    """The request's mode, checked before anything is probed: (request, attach, script);
    --keep-running implies --attach, which implies --console."""
    attach = request.attach or request.keep_running
    if (attach or request.console_log) and request.console is None:
        request = request.replace(console="")
    script = script_from(request, implied=request.screenshot is not None)
    validate.check_not_empty("--record", [request.record], "a new or empty directory")
    if request.record is not None and request.deterministic:
        raise UsageError("--deterministic and --record exclude each other: a recording counts "
                         "instructions its own way (-icount shift=auto) and replays the same "
                         "every time; drop --deterministic")
    if request.record is not None and (request.dump_dtb or request.screenshot):
        given = "--dump-dtb" if request.dump_dtb else "--screenshot (QEMU replays no display)"
        raise UsageError(f"--record: {given} cannot be recorded; record in the foreground, "
                         "attached (--attach) or a scripted boot (--exec/--expect)")
    if attach and script is not None:
        given = "--attach" if request.attach else "--keep-running (which implies --attach)"
        raise UsageError(f"{given} is interactive; leave out the scripted-boot options")
    return request, attach, script


def _check_kept_recording(target: Target, info: QemuInfo, keep_running: bool) -> None:
    """Measured (QEMU 7.2, malta): where bbv reads the serial line itself (it types the
    console's activation there), a recording QEMU keeps after bbv has left writes a serial
    transcript its replay does not reproduce (1861 of 2069 bytes)."""
    if keep_running and console_activation(target, info) == "manual":
        raise UsageError(f"--keep-running --record: on '{target.name}' bbv reads the serial "
                         "line itself, and nobody would once bbv has left, so the serial "
                         "transcript would not replay; record with --attach alone")


def _built(request: RunRequest) -> RunRequest:
    """--build: rebuild the target first and boot what was built."""
    if request.no_ccache and not request.build:
        raise UsageError("--no-ccache belongs to --build (rebuild before booting); add --build")
    if not (request.build or request.src or request.build_dir):
        return request
    # The build stack (make, toolchains, ccache) only for --build: 20 ms of every boot's start-up
    from barebox_virtio_cli.build.service import build_for_run

    return request.replace(image=str(build_for_run(
        request.target, request.arch, request.image, request.build, request.src,
        request.build_dir, request.no_ccache)))


def command_line(request: RunRequest) -> str:
    """--dry-run: the QEMU command line, shell-quoted, one option group a line."""
    request, attach, script = _checked(request)
    request = _built(request)
    target, info, spec, board = _prepare_board(request, attach)
    if board is not None:
        board.prepare_boot(dry_run=True)
    if request.record is not None:
        _check_kept_recording(target, info, request.keep_running)
        spec = recorded(spec, Path(request.record).absolute())
    if attach:
        from barebox_virtio_cli.console.attach import attach_command

        return format_command(attach_command(target, info, spec))
    command = format_command(build_command(target, spec, info))
    if script is not None:
        given = [name for name, value in (
            ("--exec", request.exec), ("--expect", request.expect), ("--timeout", request.timeout),
            ("--junit", request.junit), ("--json", request.json),
            ("--screenshot", request.screenshot)) if value]
        say(f"warning: --dry-run only prints the QEMU command line; {', '.join(given)} "
            f"{'is' if len(given) == 1 else 'are'} not carried out")
    return command


def boot(request: RunRequest) -> int:
    """Boot as asked; the exit status (QEMU's, the script's, or 128+N after signal N)."""
    request, attach, script = _checked(request)
    directory = None if request.record is None else recording.check_new(Path(request.record))
    request = _built(request)
    stub = _gdb_stub(request)
    if stub is not None:
        request = request.replace(gdb=str(stub))  # a free port is picked once
    target, info, spec, board = _prepare_board(request, attach)
    if board is not None:
        board.prepare_boot(dry_run=False)
    if stub is not None:
        announce_stub(target, spec.image, stub, spec.gdb_wait)
    if directory is None:
        return _boot(request, target, info, spec, board, script, attach)
    _check_kept_recording(target, info, request.keep_running)
    made = not directory.exists()
    spec = recording.begin(directory, target, info, spec, attach)
    if spec.console is not None:  # the recording keeps the virtio console's transcript
        request = request.replace(console_log=str(directory / recording.CONSOLE))
    return recording.keeping_status(directory, made, lambda: _boot(
        request, target, info, spec, board, script, attach,
        lambda pid: recording.handed_over(directory, pid)))


def _boot(request: RunRequest, target: Target, info: QemuInfo, spec: RunSpec, board,
          script, attach: bool, on_hand_over=None) -> int:
    if attach:
        from barebox_virtio_cli.console.attach import attach_run

        return attach_run(target, info, spec, request.keep_running, request.console_log,
                          on_hand_over)

    if spec.dump_dtb is not None:
        from barebox_virtio_cli.qemu.dtb import dump_dtb

        return dump_dtb(qm.Machine(target, info, spec, qm.CAPTURE), spec.dump_dtb)
    if script is not None:
        machine = qm.Machine(target, info, spec, qm.PTY, console_log=request.console_log)
        return run_script(machine, script, screenshot=board.shot if board else None)

    relay = foreground_serial(target, info, spec)
    return qm.Machine(target, info, spec, qm.STDIO if relay is None else qm.RELAY,
                      console_log=request.console_log, relay=relay,
                      announce=lambda: _announce(target, info, spec)).foreground()


def scripted(request: RunRequest, on_step=None):
    """A scripted boot (--exec/--expect) of an image, not reported: its ScriptResult (session/
    report.py), for commands that judge boots themselves (bbv bisect)."""
    request, attach, script = _checked(request)
    if script is None or attach:
        raise UsageError("a scripted boot needs --exec or --expect, and no --attach")
    target, info, spec, _ = _prepare_board(request, attach)
    return session(Machine(target, info, spec, PTY, console_log=request.console_log), script,
                   on_step=on_step)


def _announce(target: Target, info: QemuInfo, spec: RunSpec) -> None:
    if spec.recording:
        say(f"recording {target.name} ({boot_source(spec)}) into {spec.icount.rrfile.parent}; "
            "serial console below, no QEMU monitor: barebox's poweroff or reset ends the "
            "recording")
    else:
        say(f"booting {target.name} ({boot_source(spec)}); serial console below, Ctrl-A X quits "
            "QEMU")
    if spec.console is not None:
        say(f"virtio console: bbv console {spec.console}")
        if console_activation(target, info) == "manual":
            say(f"{target.machine} cannot activate the virtio console at boot; bbv types "
                f"'{activation_command(target)}' at barebox's first prompt on the serial console")
            return  # and stops the autoboot countdown on the way
    if not any(entry.path == "nv/autoboot" for entry in spec.env):
        skip = ", or boot with --env nv/autoboot=abort" if fw_cfg_usable(target, info) else ""
        say("barebox counts down, then runs its default boot (the network: it fails without a "
            f"server) before its prompt; a key stops the countdown{skip}")
