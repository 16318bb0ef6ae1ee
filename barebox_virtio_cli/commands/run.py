"""bbv run: find the image, check the inputs, build the QEMU command line, print or boot it."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

import click

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu.args import (
    EnvEntry,
    RunSpec,
    activation_command,
    build_command,
    console_activation,
    flatten,
    format_command,
    parse_port_forward,
)
from barebox_virtio_cli.qemu.probe import QemuInfo, find_binary, probe
from barebox_virtio_cli.session.options import pop_script, run_script, script_options
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.status import say


def resolve_image(target: Target, image: str | None, cwd: Path) -> Path:
    if image is not None:
        return _existing_file(Path(image), "--image")
    from barebox_virtio_cli.build.record import find_image

    found, looked = find_image(target.name, target.image, cwd)
    if found is None:
        raise BbvError(f"no {target.image} for target '{target.name}' (looked at "
                       f"{', '.join(map(str, looked))}); build it with 'bbv build {target.name}' "
                       "or pass --image PATH")
    return found.resolve()


def _existing_file(path: Path, option: str, how: str = "") -> Path:
    if not path.exists():
        raise UsageError(f"{option} {path}: no such file{how}")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option} {path}: permission denied (not readable)")
    return path.resolve()


def check_block_image(path: Path, snapshot: bool, check_locks: bool = True) -> Path:
    from barebox_virtio_cli.images.inuse import lock_conflict

    path = _existing_file(path, "--blk", "; make one with 'bbv image create "
                          f"{shlex.quote(str(path))} --size 8M'")
    if not snapshot and not os.access(path, os.W_OK):
        raise UsageError(f"--blk {path}: not writable; add --snapshot to boot it read-only")
    problem = lock_conflict(path, snapshot) if check_locks else None
    if problem:
        raise UsageError(f"--blk {path}: {problem}")
    return path


def default_console_path(target: Target) -> Path:
    from barebox_virtio_cli.util.paths import runtime_dir

    return runtime_dir() / f"{target.name}.console"


def check_console_path(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise UsageError(f"--console {path}: directory {path.parent} does not exist")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISSOCK(mode):
        raise UsageError(f"--console {path}: exists and is not a socket; QEMU would replace it, "
                         "so choose another path")
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return path  # stale: nobody serves it, QEMU replaces it
    raise UsageError(f"--console {path}: already served by a running QEMU; stop it or choose "
                     "another path")


def parse_fs(text: str, index: int) -> tuple[str, Path]:
    tag, sep, directory = text.rpartition("=")
    path = Path(directory)
    if not path.is_dir():
        raise UsageError(f"--fs {text}: {directory} is not a directory")
    tag = tag if sep else (path.resolve().name or f"fs{index}")
    return tag, path.resolve()


def parse_env(text: str) -> EnvEntry:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--env '{text}' is not PATH=VALUE or PATH=@FILE")
    if value.startswith("@"):
        return EnvEntry(name, str(_existing_file(Path(value[1:]), "--env")), is_file=True)
    return EnvEntry(name, value)


def find_firmware(target: Target, info: QemuInfo, given: str | None) -> str | None:
    """The -bios file: --firmware, else the target's own, else None (QEMU's default)."""
    if given:
        return str(_existing_file(Path(given), "--firmware"))
    for candidate in target.firmware:
        if os.path.isfile(candidate):
            return candidate
    if target.firmware:
        raise BbvError(f"target '{target.name}' needs firmware ({', '.join(target.firmware)}), "
                       f"none found; install it (Debian/Ubuntu: apt install "
                       f"{target.firmware_package}) or pass --firmware FILE")
    if target.qemu_firmware and not info.data_file(target.qemu_firmware):
        raise BbvError(f"{target.qemu} lacks its default firmware {target.qemu_firmware} (not in "
                       f"{', '.join(info.datadirs) or 'its data dirs'}; Debian does not package "
                       "it): pass one with --firmware FILE")
    return None


def qemu_info(target: Target) -> QemuInfo:
    return probe(find_binary(target.qemu, target.qemu_package))


def prepare(target_name, arch, image, blk, rng, console, input_, net, port_forward, fs, env,
            memory, cpu, machine, snapshot, graphic, qemu_arg, firmware=None, serial="mon:stdio",
            qmp=None, check_locks=True):
    """Everything `bbv run` checks and decides before QEMU starts: (target, info, spec).
    check_locks=False for commands that start no QEMU here (export)."""
    from barebox_virtio_cli.images.inuse import check_distinct
    from barebox_virtio_cli.util import validate

    for option, values in (("--image", [image]), ("--blk", blk), ("--fs", fs),
                           ("--firmware", [firmware])):
        validate.check_not_empty(option, values)
    target = load_catalog().resolve(target_name, arch)
    memory = validate.parse_memory(memory) if memory is not None else None
    check_distinct([Path(b) for b in blk])
    info = qemu_info(target)
    machine = validate.check_machine(machine, info.machines, info.binary) \
        if machine is not None else None
    cpu = validate.check_cpu(cpu, info.cpus, info.binary) if cpu is not None else None
    spec = RunSpec(
        image=resolve_image(target, image, Path.cwd()),
        blks=[check_block_image(Path(b), snapshot, check_locks) for b in blk],
        rng=rng,
        console=None if console is None else check_console_path(
            Path(console) if console else default_console_path(target)),
        input=input_, net=net,
        port_forwards=[parse_port_forward(p) for p in port_forward],
        fs=[parse_fs(f, i) for i, f in enumerate(fs)],
        env=[parse_env(e) for e in env],
        memory=memory, cpu=cpu, machine=machine, snapshot=snapshot, graphic=graphic,
        serial=serial, qmp=qmp, firmware=find_firmware(target, info, firmware),
        qemu_args=list(qemu_arg),
    )
    return target, info, spec


def run_options(func):
    """The device and machine options shared by every command that boots a target."""
    options = [
        click.option("-t", "--target", help="Target name from 'bbv targets'.",
                     shell_complete=complete.target_names),
        click.option("-a", "--arch", help="Pick the default target of an arch (arm, mips, ...).",
                     shell_complete=complete.arch_names),
        click.option("--image", metavar="PATH", help="barebox image (default: the last build)."),
        click.option("--blk", multiple=True, metavar="FILE", help="Raw disk image (repeatable)."),
        click.option("--rng", count=True, help="Add a virtio RNG (repeat for more)."),
        click.option("--console", is_flag=False, flag_value="", default=None, metavar="[PATH]",
                     help="Virtio console on a unix socket (default path in the runtime dir)."),
        click.option("--input", "input_", is_flag=True, help="Add a virtio keyboard."),
        click.option("--net", is_flag=True, help="Add a virtio NIC on QEMU user networking."),
        click.option("--port-forward", multiple=True, metavar="[tcp:|udp:]HOST[:GUEST]",
                     help="Forward a loopback port to the guest (with --net; repeatable)."),
        click.option("--fs", multiple=True, metavar="[TAG=]DIR",
                     help="Share DIR over 9p; barebox mounts it at /mnt/9p/TAG (repeatable)."),
        click.option("--env", multiple=True, metavar="PATH=VALUE|PATH=@FILE",
                     help="Put a file into barebox's environment over fw_cfg (repeatable)."),
        click.option("-m", "--memory", help="Guest memory, e.g. 512M."),
        click.option("--cpu", help="QEMU -cpu model."),
        click.option("--machine", help="QEMU -M machine (default from the target)."),
        click.option("--firmware", metavar="FILE",
                     help="Firmware for -bios (OVMF, OpenSBI) instead of the target's default."),
        click.option("--snapshot", is_flag=True, help="Do not write to the --blk images."),
        click.option("--graphic", is_flag=True, help="Open QEMU's display window."),
        click.option("--qemu-arg", multiple=True, metavar="ARG",
                     help="Pass ARG to QEMU as is (repeatable)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@run_options
@click.option("-n", "--dry-run", is_flag=True, help="Print the QEMU command line, do not boot.")
@click.option("--attach", is_flag=True, help="Boot in the background and attach this terminal "
              "to the virtio console (implies --console); leaving it stops QEMU.")
@click.option("--keep-running", is_flag=True, help="With --attach: leave QEMU running.")
@script_options
def run(dry_run: bool, **opts) -> None:
    """Boot barebox in QEMU with VirtIO devices (or print the command with --dry-run).

    \b
    Examples:
      bbv run --target vexpress --blk a.img --blk b.img --rng --console
      bbv run --arch mips --blk disk.img --dry-run
      bbv run --target vexpress --blk a.img --rng --exec 'ls /dev' --expect virtioblk0
    """
    attach, keep_running = opts.pop("attach") or opts["keep_running"], opts.pop("keep_running")
    if attach and opts["console"] is None:
        opts["console"] = ""
    script = pop_script(opts)
    if attach and script is not None:
        raise UsageError("--attach is interactive; leave out the scripted-boot options")
    target, info, spec = prepare(opts.pop("target"), opts.pop("arch"), **opts)
    if attach:
        from barebox_virtio_cli.console.attach import attach_run

        sys.exit(attach_run(target, info, spec, keep_running, dry_run))
    groups = build_command(target, spec, info)
    if dry_run:
        click.echo(format_command(groups))
        return
    if script is not None:
        sys.exit(run_script(target, info, spec, flatten(groups), script))
    _announce(target, info, spec)
    from barebox_virtio_cli.qemu.process import run_foreground

    sys.exit(run_foreground(flatten(groups)))


def _announce(target: Target, info: QemuInfo, spec: RunSpec) -> None:
    say(f"booting {target.name} ({spec.image}); serial console below, Ctrl-A X quits QEMU")
    if spec.console is not None:
        say(f"virtio console: bbv console {spec.console}")
        if console_activation(target, info) == "manual":
            say(f"{target.machine} cannot activate the virtio console at boot; type "
                f"'{activation_command(target)}' at the barebox prompt")
