"""Helpers for tests: a QemuInfo like Debian's QEMU 7.2, and a parser for QMP's `info qtree`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from barebox_virtio_cli.qemu.probe import QemuInfo

KINDS = ("blk", "rng", "serial", "keyboard", "net", "9p")


def synthetic_info(binary: str = "qemu-system-x", version=(7, 2, 0), mmio: bool = True,
                   machines: dict[str, str] | None = None) -> QemuInfo:
    """What QEMU 7.2 reports for the types bbv uses (test_qemu_real checks this against the
    real probe); `mmio=False` is a binary without virtio-mmio, like qemu-system-mips."""
    pci = {f"virtio-{k}-pci" for k in KINDS}
    dev = {f"virtio-{k}-device" for k in KINDS} if mmio else set()
    props = {t: {"disable-legacy", "disable-modern", "addr"} for t in pci}
    props.update({t: {"ioeventfd"} for t in dev})
    if mmio:
        props["virtio-mmio"] = {"force-legacy", "ioeventfd"}
    return QemuInfo(binary=binary, version=version, types=pci | dev | {"virtconsole"},
                    properties=props, machines=machines or {"pc": "pc-i440fx-7.2"})


@dataclass
class QtreeNode:
    type: str
    id: str = ""
    props: dict[str, str] = field(default_factory=dict)
    mmio: list[int] = field(default_factory=list)
    bus: str = ""  # the bus this device sits on
    parent: QtreeNode | None = None


def parse_qtree(text: str) -> list[QtreeNode]:
    """Every device in `info qtree`, with its properties, the bus it sits on and its parent."""
    devices: list[QtreeNode] = []
    stack: list[tuple[int, str, QtreeNode | None]] = []  # (indent, bus name, owning device)
    current: QtreeNode | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if body.startswith("bus: "):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, body[5:], current))
        elif body.startswith("dev: "):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            m = re.match(r'dev: ([^,]+), id "(.*)"', body)
            bus, owner = (stack[-1][1], stack[-1][2]) if stack else ("", None)
            current = QtreeNode(type=m[1], id=m[2], bus=bus, parent=owner)
            devices.append(current)
        elif current is not None and re.match(r"mmio [0-9a-f]+/", body):
            current.mmio.append(int(body.split()[1].split("/")[0], 16))
        elif current is not None and " = " in body:
            key, value = body.split(" = ", 1)
            current.props[key] = value.strip('"')
    return devices
