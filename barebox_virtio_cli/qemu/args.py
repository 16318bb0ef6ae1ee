"""Pure logic: a QEMU command line for a target, the devices asked for and what the QEMU binary
supports. No files are touched and no processes started here."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.probe import QemuInfo
from barebox_virtio_cli.targets.catalog import Target

FW_CFG_PREFIX = "opt/org.barebox.env/"
FW_CFG_NAME_MAX = 55
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes; a client cannot connect to a 108-byte path


@dataclass
class EnvEntry:
    path: str  # barebox environment path, e.g. nv/dev.cs1.active
    value: str
    is_file: bool = False


@dataclass
class RunSpec:
    image: Path
    blks: list[Path] = field(default_factory=list)
    rng: int = 0
    console: Path | None = None
    input: bool = False
    net: bool = False
    port_forwards: list[str] = field(default_factory=list)
    fs: list[tuple[str, Path]] = field(default_factory=list)
    env: list[EnvEntry] = field(default_factory=list)
    memory: str | None = None
    cpu: str | None = None
    machine: str | None = None
    snapshot: bool = False
    graphic: bool = False
    serial: str = "mon:stdio"  # a QEMU -serial value
    qmp: Path | None = None  # QMP control socket
    firmware: str | None = None  # resolved firmware file for targets that need one
    qemu_args: list[str] = field(default_factory=list)


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


def _check_limits(target: Target, spec: RunSpec, info: QemuInfo) -> None:
    wanted = {"blk": bool(spec.blks), "rng": spec.rng > 0, "console": spec.console is not None,
              "input": spec.input, "net": spec.net, "9p": bool(spec.fs)}
    for kind, asked in wanted.items():
        if asked and kind not in target.devices:
            raise UsageError(f"target '{target.name}' cannot carry virtio {kind} devices")
    if spec.firmware and target.load == "bios":
        raise UsageError(f"target '{target.name}' loads barebox itself with -bios; "
                         "--firmware cannot be added")
    if spec.port_forwards and not spec.net:
        raise UsageError("--port-forward needs --net")
    if spec.env and not fw_cfg_usable(target, info):
        raise UsageError(_no_fw_cfg(target, info) + "; --env cannot be passed")
    if spec.console is not None and len(str(spec.console).encode()) > SOCKET_PATH_MAX:
        raise UsageError(f"console socket path is {len(str(spec.console).encode())} bytes, "
                         f"more than the {SOCKET_PATH_MAX} a unix socket allows; choose a "
                         "shorter path")
    for entry in spec.env:
        name = FW_CFG_PREFIX + entry.path
        if len(name) > FW_CFG_NAME_MAX:
            raise UsageError(f"--env path '{entry.path}' is too long: QEMU limits fw_cfg names to "
                             f"{FW_CFG_NAME_MAX} characters, {len(FW_CFG_PREFIX)} of them "
                             f"'{FW_CFG_PREFIX}'")
    tags = [tag for tag, _ in spec.fs]
    if len(set(tags)) != len(tags):
        raise UsageError("each --fs needs its own TAG (use TAG=DIR)")


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
    groups.append([f"-{target.load}", str(spec.image)])  # -kernel/-bios take paths raw
    if not spec.graphic:
        groups.append(["-display", "none"])
    groups.append(["-serial", spec.serial])
    if spec.serial != "mon:stdio":
        groups.append(["-monitor", "none"])
    if spec.qmp is not None:
        groups.append(["-qmp", f"unix:{opt_value(str(spec.qmp))},server=on,wait=off"])
    if target.transport == "mmio" and info.has_property("virtio-mmio", "force-legacy"):
        groups.append(["-global", "virtio-mmio.force-legacy=false"])

    devices = _Devices(target, info, machine)
    if spec.console is not None:
        chardev = f"socket,id=con0,path={opt_value(str(spec.console))},server=on,wait=off"
        devices.add("serial", "id=vser0", after=[["-chardev", chardev], [
            "-device", "virtconsole,chardev=con0,name=console.con0"]])
    for i in range(spec.rng):
        devices.add("rng", f"id=rng{i}")
    for i, blk in enumerate(spec.blks):
        drive = f"if=none,id=hd{i},format=raw,file={opt_value(str(blk))}"
        if spec.snapshot:
            drive += ",snapshot=on"
        devices.add("blk", f"drive=hd{i}", f"id=blk{i}", before=[["-drive", drive]])
    if spec.input:
        devices.add("keyboard", "id=kbd0")
    if spec.net:
        netdev = "user,id=net0" + "".join(f",hostfwd={f}" for f in spec.port_forwards)
        devices.add("net", "netdev=net0", "id=nic0", before=[["-netdev", netdev]])
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
    for entry in env:
        source = f"file={opt_value(entry.value)}" if entry.is_file else \
            f"string={opt_value(entry.value)}"
        groups.append(["-fw_cfg", f"name={FW_CFG_PREFIX}{opt_value(entry.path)},{source}"])
    groups += [[arg] for arg in spec.qemu_args]
    return groups


def parse_port_forward(text: str) -> str:
    """'8080:80', 'tcp:8080:80', 'udp:69:69' or '8022' -> a hostfwd rule bound to loopback."""
    parts = text.split(":")
    proto = parts.pop(0) if parts[0] in ("tcp", "udp") else "tcp"
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
        raise UsageError(f"--port-forward '{text}' is not [tcp:|udp:]HOSTPORT[:GUESTPORT] "
                         "(ports 1-65535), e.g. 2222:22")
    return f"{proto}:127.0.0.1:{parts[0]}-:{parts[1]}"


def flatten(groups: list[list[str]]) -> list[str]:
    return [arg for group in groups for arg in group]


def format_command(groups: list[list[str]]) -> str:
    """Shell-quoted, one option per line, so it pastes into a shell and reviews well."""
    return " \\\n    ".join(" ".join(shlex.quote(a) for a in group) for group in groups)
