"""Pure logic: a QEMU command line for a target, the devices asked for and what the QEMU binary
supports. No files are touched and no processes started here."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.targets.target import Target

FW_CFG_PREFIX = "opt/org.barebox.env/"
FW_CFG_NAME_MAX = 55
# barebox's framebuffer console, inactive until told; --graphic activates it at boot
FB_CONSOLE = "fbconsole0"


@dataclass
class EnvEntry:
    path: str  # barebox environment path, e.g. nv/dev.cs1.active
    value: str
    is_file: bool = False


# -icount: guest time counted in instructions. DETERMINISTIC alone (no record/replay) keeps
# barebox's timestamps and boot time equal run to run. Record/replay needs QEMU's adaptive shift:
# measured with QEMU 7.2, a fixed shift never delivers virtio-blk completions under record (and,
# with sleep=off, no virtio-rng data either), since QEMU then takes queued events only at timer
# checkpoints that a polling barebox never arms.
DETERMINISTIC = "shift=4,align=off,sleep=off"
RECORDED = "shift=auto"
RECORD, REPLAY = "record", "replay"
# QEMU options that --deterministic, --record and a replay set themselves: a --qemu-arg giving
# one again is refused (QEMU takes the last -icount: a recording with shift=3 hangs and keeps a
# log no replay can follow).
ICOUNT_OWNED = ("icount",)
# -rtc values given with --qemu-arg that a recording cannot replay (measured, QEMU 7.2, on
# vexpress and riscv64, a boot reading the RTC twice: docs/record-replay.md). The others
# replayed: base=utc (the default), base=DATE, clock=host (the default), clock=vm.
RECORD_RTC_LIMITS = {
    "clock=rt": "the RTC then runs on the host's monotonic clock, which QEMU does not record: "
                "replays diverged (vexpress 1 of 2, riscv64 2 of 2)",
    "base=localtime": "QEMU refuses to record it (\"Record/replay feature is not supported for "
                      "'-rtc base=localtime'\")",
}
# Seconds between typed characters while QEMU records. Measured (QEMU 7.2, PL011): a line typed
# as one burst arrives scrambled, as QEMU hands recorded input over only at its checkpoints.
RECORD_TYPING_PACE = 0.05
# ... and at most this many typed ahead of barebox's echo: QEMU's record mode hands input to the
# UART without asking it for room, and the PL011's and 16550's FIFOs hold 16 (a busy host
# delayed QEMU's checkpoints beyond 16 x 50 ms: the 17th key overwrote the first).
RECORD_TYPING_WINDOW = 8
# What QEMU records and replays of each virtio device kind (measured: docs/record-replay.md).
# A kind with a reason is refused under --record/replay with that reason. (The virtio console
# records: QEMU records the input of the chardevs it opens for -serial only, so a recorded
# console's chardev is also given a -serial slot that no device of the machine uses.)
REPLAY_LIMITS = {
    "9p": "QEMU records no 9p file access: its replay diverges (\"Missing character write "
          "event in the replay log\")",
}


@dataclass
class Icount:
    """-icount: deterministic guest time; with mode, QEMU's record/replay into rrfile."""

    mode: str | None = None  # RECORD, REPLAY or None (deterministic timing only)
    rrfile: Path | None = None
    snapshots: Path | None = None  # a qcow2 file for the VM snapshots of reverse debugging

    def value(self) -> str:
        if self.mode is None:
            return DETERMINISTIC
        return f"{RECORDED},rr={self.mode},rrfile={opt_value(str(self.rrfile))}"


@dataclass
class RunSpec:
    image: Path | None  # None only for --dump-dtb, or a --flash file that holds barebox
    blks: list[Path] = field(default_factory=list)
    rng: int = 0
    console: Path | None = None
    console_pipe: Path | None = None  # FIFOs PATH.in/.out that bbv serves console from
    input: bool = False
    net: bool = False
    port_forwards: list[str] = field(default_factory=list)
    fs: list[tuple[str, Path]] = field(default_factory=list)
    env: list[EnvEntry] = field(default_factory=list)
    memory: str | None = None
    cpu: str | None = None
    machine: str | None = None
    snapshot: bool = False
    graphic: bool = False  # add the target's display device (and a keyboard on mmio)
    window: bool = False  # show QEMU's display window; otherwise -display none
    bootargs: list[str] = field(default_factory=list)  # joined into -append
    dtb: Path | None = None  # -dtb: a device tree instead of QEMU's own
    dump_dtb: Path | None = None  # QEMU writes its device tree there and exits, no boot
    flash: Path | None = None  # the firmware boots from this pflash file instead of -bios
    serial: str = "mon:stdio"  # a QEMU -serial value
    qmp: Path | None = None  # QMP control socket
    firmware: str | None = None  # resolved firmware file for targets that need one
    gdb: str | None = None  # a -gdb value: QEMU's gdb stub (debug/endpoint.py makes it)
    gdb_wait: bool = False  # -S: the CPU waits for gdb's `continue`
    qemu_args: list[str] = field(default_factory=list)
    icount: Icount | None = None  # --deterministic, --record, bbv replay
    serial_log: Path | None = None  # recorded runs: QEMU copies the serial output there

    @property
    def recording(self) -> bool:
        """QEMU records or replays this run (not only deterministic timing)."""
        return self.icount is not None and self.icount.mode is not None

    @property
    def deterministic(self) -> bool:
        """--deterministic: guest time counted in instructions, nothing recorded."""
        return self.icount is not None and self.icount.mode is None


def boot_source(spec: RunSpec) -> str:
    """What QEMU boots, for status lines: the image, or the flash file holding it."""
    return f"flash {spec.flash}" if spec.flash is not None else str(spec.image)


def opt_value(text: str) -> str:
    """A value inside a QemuOpts option list (-drive, -chardev, ...): commas are doubled."""
    return text.replace(",", ",,")


def console_activation(target: Target, info: QemuInfo) -> str:
    """'active' (barebox does it), 'fw_cfg' (bbv does it at boot) or 'manual' (user types it)."""
    if target.console_active:
        return "active"
    return "fw_cfg" if fw_cfg_usable(target, info) else "manual"


def activation_command(target: Target) -> str:
    return f"{target.console}.active=ioe"


def fw_cfg_usable(target: Target, info: QemuInfo) -> bool:
    if not target.fw_cfg:
        return False
    return not target.fw_cfg_min_qemu or info.version >= _version(target.fw_cfg_min_qemu)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def needs_disable_modern_off(machine: str, info: QemuInfo) -> bool:
    """QEMU < 2.7 and machine types <= 2.6 default to disable-modern=on; barebox needs modern."""
    if info.version < (2, 7, 0):
        return True
    match = re.search(r"-(\d+)\.(\d+)$", info.resolve_machine(machine))
    return bool(match) and (int(match[1]), int(match[2])) <= (2, 6)


class _Devices:
    """Collects virtio devices, giving each the transport-specific type name and properties."""

    def __init__(self, target: Target, info: QemuInfo, machine: str):
        self.target, self.info = target, info
        self.mmio = target.transport == "mmio"
        self.pci_props: list[str] = []
        if not self.mmio:
            self.pci_props.append("disable-legacy=on")
            if needs_disable_modern_off(machine, info):
                self.pci_props.append("disable-modern=off")
        self.count = 0
        self.groups: list[list[str]] = []

    def add(self, kind: str, *props: str, before: list[list[str]] = (),
            after: list[list[str]] = ()) -> None:
        typename = f"virtio-{kind}-{'device' if self.mmio else 'pci'}"
        if typename not in self.info.types:
            raise UsageError(f"{self.info.binary} has no device '{typename}'; "
                             "this QEMU build cannot carry that option")
        extra = [p for p in self.pci_props if self.info.has_property(typename, p.split("=")[0])]
        if self.mmio and self.target.mmio_pin_bus:
            extra.append(f"bus=virtio-mmio-bus.{self.count}")
        self.count += 1
        self.groups += list(before)
        self.groups.append(["-device", ",".join([typename, *props, *extra])])
        self.groups += list(after)


def console_chardev(spec: RunSpec) -> str:
    """bbv's FIFOs when bbv serves the console (lossless), else QEMU's own socket server (what
    --dry-run prints: it works pasted into a shell, but QEMU drops output it cannot send)."""
    if spec.console_pipe is not None:
        return f"pipe,id=con0,path={opt_value(str(spec.console_pipe))}"
    return f"socket,id=con0,path={opt_value(str(spec.console))},server=on,wait=off"


def _check_limits(target: Target, spec: RunSpec, info: QemuInfo) -> None:
    wanted = {"blk": bool(spec.blks), "rng": spec.rng > 0, "console": spec.console is not None,
              "input": spec.input, "net": spec.net, "9p": bool(spec.fs)}
    for kind, asked in wanted.items():
        if asked and kind not in target.devices:
            raise UsageError(f"target '{target.name}' cannot carry virtio {kind} devices")
        if asked and spec.recording and kind in REPLAY_LIMITS:
            raise UsageError(f"virtio {kind} cannot be recorded: {REPLAY_LIMITS[kind]}; leave "
                             "it out of a recorded run")
    if spec.recording:
        _check_recordable(spec)
    if spec.icount is not None:
        check_clock_args(spec)
    if spec.firmware and target.load == "bios":
        raise UsageError(f"target '{target.name}' loads barebox itself with -bios; "
                         "--firmware cannot be added")
    _check_board_options(target, spec, info)
    if spec.port_forwards and not spec.net:
        raise UsageError("--port-forward needs --net")
    if spec.env and not fw_cfg_usable(target, info):
        raise UsageError(_no_fw_cfg(target, info) + "; --env cannot be passed")
    for entry in spec.env:
        name = FW_CFG_PREFIX + entry.path
        if len(name) > FW_CFG_NAME_MAX:
            raise UsageError(f"--env path '{entry.path}' is too long: QEMU limits fw_cfg names to "
                             f"{FW_CFG_NAME_MAX} characters, {len(FW_CFG_PREFIX)} of them "
                             f"'{FW_CFG_PREFIX}'")
    tags = [tag for tag, _ in spec.fs]
    if len(set(tags)) != len(tags):
        raise UsageError("each --fs needs its own TAG (use TAG=DIR)")


def check_clock_args(spec: RunSpec) -> None:
    """--qemu-arg must not give what the -icount modes set themselves, nor, recording or
    replaying, an -rtc value that QEMU does not replay (RECORD_RTC_LIMITS)."""
    given, value = ("--record or bbv replay", f"{RECORDED},rr={spec.icount.mode}") \
        if spec.recording else ("--deterministic", DETERMINISTIC)
    for i, arg in enumerate(spec.qemu_args):
        words = arg.split("=", 1)[0].split()
        option = words[0].lstrip("-") if words and arg.startswith("-") else None
        if option in ICOUNT_OWNED:
            raise UsageError(f"--qemu-arg {arg}: {given} sets -{option} itself ({value}); drop "
                             f"--qemu-arg {arg}")
        rtc = spec.qemu_args[i + 1] if option == "rtc" and i + 1 < len(spec.qemu_args) else ""
        for item in rtc.split(",") if spec.recording else []:
            if item in RECORD_RTC_LIMITS:
                raise UsageError(f"--qemu-arg -rtc {rtc}: {item} cannot be recorded: "
                                 f"{RECORD_RTC_LIMITS[item]}; drop it (base=DATE and "
                                 "clock=vm replay)")


def _check_recordable(spec: RunSpec) -> None:
    """What a replay could not reproduce, refused (each measured: docs/record-replay.md)."""
    for given, option, why in (
            (spec.flash, "--flash", "its pflash is written outside QEMU's block replay"),
            (spec.graphic, "--graphic", "QEMU replays no display input"),
            (spec.dump_dtb, "--dump-dtb", "nothing boots")):
        if given:
            raise UsageError(f"{option} cannot be recorded: {why}")


def serial_groups(spec: RunSpec) -> list[list[str]]:
    """-serial. A recorded run's serial line has no monitor (measured: QEMU 7.2 replays a run
    with `mon:stdio` only up to the first key typed, then hangs; a plain stdio chardev
    replays; signal=off passes Ctrl-C, barebox's autoboot abort key, to the guest), and QEMU
    copies what the guest prints into serial_log."""
    if not spec.recording:
        groups = [["-serial", spec.serial]]
        return groups if spec.serial == "mon:stdio" else groups + [["-monitor", "none"]]
    chardev = _serial_chardev(spec.serial)
    if spec.serial_log is not None and spec.serial != f"file:{spec.serial_log}":
        chardev += f",logfile={opt_value(str(spec.serial_log))}"
    return [["-chardev", chardev], ["-serial", "chardev:serial0"], ["-monitor", "none"]]


def _serial_chardev(serial: str) -> str:
    """A -serial value as the -chardev id=serial0 a recording needs: this terminal, a log file
    or a socket (an attached run's)."""
    kind, _, where = serial.partition(":")
    if kind == "mon" or serial == "stdio":
        return "stdio,id=serial0,signal=off"
    if kind == "file":
        return f"file,id=serial0,path={opt_value(where)}"
    if kind == "unix":
        return f"socket,id=serial0,path={where}"
    raise ValueError(f"no recorded chardev for -serial {serial}")


def recorded_chardev(target: Target, spec: RunSpec, chardev: str) -> list[list[str]]:
    """A recorded run's chardev that no -serial names (the virtio console's): QEMU records and
    replays the input of -serial chardevs only (measured, QEMU 7.2: typed console input is
    otherwise not in the log, and the replay waits for it for ever). So it takes the first
    -serial slot the machine wires to no device (the slots before it get null chardevs)."""
    if not spec.recording:
        return []
    spare = [["-serial", "null"]] * (target.serial_ports - 1)
    return spare + [["-serial", f"chardev:{chardev}"]]


def _check_board_options(target: Target, spec: RunSpec, info: QemuInfo) -> None:
    """--bootarg, --dtb, --dump-dtb, --flash and --graphic against what the machine has."""
    instead = "--env or --exec" if fw_cfg_usable(target, info) else "--exec"
    if spec.bootargs and target.load != "kernel":
        raise UsageError(f"--bootarg: target '{target.name}' loads barebox with -bios, and QEMU "
                         "passes a command line (-append) only to a -kernel image; use a -kernel "
                         f"target (bbv targets) or {instead}")
    if spec.bootargs and not target.device_tree:
        raise UsageError(f"--bootarg: barebox reads its command line from the device tree's "
                         f"/chosen/bootargs, and target '{target.name}' ({target.machine}) has no "
                         f"device tree, so barebox would never see -append; use {instead}")
    for option, given in (("--dtb", spec.dtb), ("--dump-dtb", spec.dump_dtb)):
        if given is not None and not target.device_tree:
            raise UsageError(f"{option}: target '{target.name}' ({target.machine}) has no device "
                             "tree from QEMU; only device-tree machines such as ARM and RISC-V "
                             "virt have one")
    if spec.flash is not None and not target.pflash_mib:
        raise UsageError(f"--flash: target '{target.name}' does not boot barebox from flash")
    if spec.graphic:
        if not target.graphic:
            raise UsageError(f"--graphic: bbv knows no display device for target "
                             f"'{target.name}'; add one with --qemu-arg")
        if "ramfb" in target.graphic and not fw_cfg_usable(target, info):
            raise UsageError(f"--graphic: the display is ramfb, which needs fw_cfg, and "
                             f"{_no_fw_cfg(target, info)}")


def _no_fw_cfg(target: Target, info: QemuInfo) -> str:
    if not target.fw_cfg:
        return f"target '{target.name}' ({target.machine}) has no fw_cfg device"
    have = ".".join(map(str, info.version))
    return (f"fw_cfg on {target.machine} needs QEMU {target.fw_cfg_min_qemu} or later "
            f"(this is {have})")


def build_command(target: Target, spec: RunSpec, info: QemuInfo) -> list[list[str]]:
    """The QEMU command line as option groups: [[binary], ['-M', 'virt'], ...]."""
    _check_limits(target, spec, info)
    machine = spec.machine or target.machine
    groups: list[list[str]] = [[info.binary], ["-M", machine], ["-cpu", spec.cpu or target.cpu],
                               ["-m", spec.memory or target.memory]]
    if spec.firmware:
        groups.append(["-bios", spec.firmware])
    if spec.flash is not None:  # the firmware image is in the flash file; no -bios then
        groups.append(["-drive", f"if=pflash,format=raw,unit=0,file={opt_value(str(spec.flash))}"])
    elif spec.image is not None:
        groups.append([f"-{target.load}", str(spec.image)])  # -kernel/-bios take paths raw
    if spec.bootargs:
        groups.append(["-append", " ".join(spec.bootargs)])
    if spec.dtb is not None:
        groups.append(["-dtb", str(spec.dtb)])
    if not spec.window:
        groups.append(["-display", "none"])
    if spec.graphic:
        groups.append(list(target.graphic))
    groups += serial_groups(spec)
    if spec.qmp is not None:
        groups.append(["-qmp", f"unix:{opt_value(str(spec.qmp))},server=on,wait=off"])
    if target.transport == "mmio" and info.has_property("virtio-mmio", "force-legacy"):
        groups.append(["-global", "virtio-mmio.force-legacy=false"])

    devices = _Devices(target, info, machine)
    if spec.console is not None:
        chardev = console_chardev(spec)
        devices.add("serial", "id=vser0", after=[["-chardev", chardev], [
            "-device", "virtconsole,chardev=con0,name=console.con0"], *recorded_chardev(
                target, spec, "con0")])
    for i in range(spec.rng):
        devices.add("rng", f"id=rng{i}")
    for i, blk in enumerate(spec.blks):
        devices.add("blk", f"drive=hd{i}", f"id=blk{i}", before=drive_groups(spec, i, blk))
    # mmio machines have no keyboard of their own: --graphic adds one, as barebox's conftest does
    if spec.input or (spec.graphic and devices.mmio):
        devices.add("keyboard", "id=kbd0")
    if spec.net:
        netdev = "user,id=net0" + "".join(f",hostfwd={f}" for f in spec.port_forwards)
        replayed = [["-object", "filter-replay,id=replay0,netdev=net0"]] if spec.recording else []
        # virtio-net's default transmit bottom half runs whenever the host gets to it, which a
        # replay cannot reproduce (4 of 6 replays of a recorded dhcp diverged); a timer on the
        # guest clock can be (12 of 12 replayed)
        tx = ["tx=timer"] if spec.recording else []
        devices.add("net", "netdev=net0", "id=nic0", *tx, before=[["-netdev", netdev]],
                    after=replayed)
    for i, (tag, directory) in enumerate(spec.fs):
        fsdev = f"local,security_model=none,id=fs{i},path={opt_value(str(directory))}"
        devices.add("9p", f"fsdev=fs{i}", f"mount_tag={opt_value(tag)}", f"id=p9fs{i}",
                    before=[["-fsdev", fsdev]])
    if target.transport == "mmio" and devices.count > target.mmio_transports:
        raise UsageError(f"{devices.count} virtio devices asked for, but {target.machine} on "
                         f"'{target.name}' has only {target.mmio_transports} virtio-mmio "
                         "transports")
    groups += devices.groups

    env = list(spec.env)
    if spec.console is not None and console_activation(target, info) == "fw_cfg":
        env.append(EnvEntry(f"nv/dev.{target.console}.active", "ioe"))
    fb_active = f"nv/dev.{FB_CONSOLE}.active"
    if spec.graphic and fw_cfg_usable(target, info) and fb_active not in [e.path for e in env]:
        env.append(EnvEntry(fb_active, "ioe"))
    for entry in env:
        source = f"file={opt_value(entry.value)}" if entry.is_file else \
            f"string={opt_value(entry.value)}"
        groups.append(["-fw_cfg", f"name={FW_CFG_PREFIX}{opt_value(entry.path)},{source}"])
    if spec.icount is not None:
        groups.append(["-icount", spec.icount.value()])
    if spec.recording and not spec.net:
        groups.append(["-net", "none"])  # no default NIC outside the recording
    if spec.recording:  # barebox's reset ends a recording where it has no poweroff (malta)
        groups.append(["-no-reboot"])
    if spec.icount is not None and spec.icount.snapshots is not None:  # on no device
        groups.append(["-drive", f"if=none,id=rr-snapshots,format=qcow2,"
                                 f"file={opt_value(str(spec.icount.snapshots))}"])
    if spec.gdb:
        groups.append(["-gdb", spec.gdb])
    if spec.gdb_wait:
        groups.append(["-S"])
    groups += [[arg] for arg in spec.qemu_args]
    if spec.dump_dtb is not None:
        groups.append(["-machine", f"dumpdtb={opt_value(str(spec.dump_dtb))}"])
    return groups


def recorded(spec: RunSpec, directory: Path, mode: str = RECORD) -> RunSpec:
    """The spec of a run recorded into (or replayed from) a recording directory
    (run/recording.py): its replay log, its own disk copies, the serial transcript."""
    from dataclasses import replace

    serial = directory / ("serial.log" if mode == RECORD else "replayed/serial.log")
    return replace(spec, blks=[directory / "disks" / f"blk{i}.img" for i in range(len(spec.blks))],
                   icount=Icount(mode, directory / "replay.bin"), serial_log=serial)


def drive_groups(spec: RunSpec, i: int, blk: Path) -> list[list[str]]:
    """A --blk image's -drive. Recorded: through QEMU's blkreplay driver, on a temporary
    overlay (snapshot=on), so the image stays as it was when the recording started."""
    drive = f"if=none,id=hd{i},format=raw,file={opt_value(str(blk))}"
    if not spec.recording:
        return [["-drive", drive + (",snapshot=on" if spec.snapshot else "")]]
    direct = drive.replace(f"id=hd{i}", f"id=img-hd{i}") + ",snapshot=on"
    return [["-drive", direct], ["-drive", f"driver=blkreplay,if=none,image=img-hd{i},id=hd{i}"]]


def spec_warnings(target: Target, spec: RunSpec) -> list[str]:
    """What will not work with this setup although QEMU starts it (data from the target file)."""
    warnings = []
    if spec.deterministic and spec.blks:  # measured: malta 35536, 48836, 35536 us
        warnings.append("--deterministic with --blk: QEMU completes disk reads on its own "
                        "threads, whenever the host gets to them, so guest time after the "
                        "first read (boot to prompt too) can move run to run; --record "
                        "replays every read at the same instruction")
    if not (spec.net and target.net_issue):
        return warnings
    fallback = ""
    if target.net_fallback:
        forwards = "".join(f",hostfwd={f}" for f in spec.port_forwards)
        replaced = "--net --port-forward ..." if forwards else "--net"
        fallback = (f"; for a NIC barebox can use, replace {replaced} with --qemu-arg=-nic "
                    f"--qemu-arg=user,model={target.net_fallback}{forwards}")
    return warnings + [f"--net on '{target.name}': {target.net_issue}{fallback}"]


def parse_port_forward(text: str) -> str:
    """'8080:80', 'tcp:8080:80', 'udp:69:69' or '8022' -> a hostfwd rule bound to loopback."""
    parts = text.split(":")
    proto = parts.pop(0) if parts[0] in ("tcp", "udp") else "tcp"
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and 0 < int(p) < 65536
                                  for p in parts):
        raise UsageError(f"--port-forward '{text}' is not [tcp:|udp:]HOSTPORT[:GUESTPORT] "
                         "(ports 1-65535), e.g. 2222:22")
    return f"{proto}:127.0.0.1:{parts[0]}-:{parts[1]}"


def flatten(groups: list[list[str]]) -> list[str]:
    return [arg for group in groups for arg in group]


def format_command(groups: list[list[str]]) -> str:
    """Shell-quoted, one option per line, so it pastes into a shell and reviews well."""
    return " \\\n    ".join(" ".join(shlex.quote(a) for a in group) for group in groups)
