"""What a QEMU binary can do, as probed (qemu/probe.py): version, device types and their
properties, machines, firmware dirs. Pure: a plain record that qemu/args.py reasons about."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class QemuInfo:
    binary: str
    version: tuple[int, int, int]
    types: set[str] = field(default_factory=set)
    properties: dict[str, set[str]] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)  # name or alias -> machine name
    datadirs: list[str] = field(default_factory=list)  # where QEMU looks for its firmware
    cpus: list[str] = field(default_factory=list)  # -cpu models (query-cpu-definitions)

    def data_file(self, name: str) -> str | None:
        return next((os.path.join(d, name) for d in self.datadirs
                     if os.path.isfile(os.path.join(d, name))), None)

    def has_property(self, typename: str, prop: str) -> bool:
        return prop in self.properties.get(typename, ())

    def resolve_machine(self, machine: str) -> str:
        """'pc' -> 'pc-i440fx-7.2'; the name before any ',option=value'."""
        name = machine.split(",", 1)[0]
        return self.machines.get(name, name)

    def to_json(self) -> dict:
        return {
            "binary": self.binary,
            "version": list(self.version),
            "types": sorted(self.types),
            "properties": {k: sorted(v) for k, v in self.properties.items()},
            "machines": self.machines,
            "datadirs": self.datadirs,
            "cpus": self.cpus,
        }

    @classmethod
    def from_json(cls, data: dict) -> QemuInfo:
        return cls(
            binary=data["binary"],
            version=tuple(data["version"]),
            types=set(data["types"]),
            properties={k: set(v) for k, v in data["properties"].items()},
            machines=data["machines"],
            datadirs=data["datadirs"],
            cpus=data.get("cpus", []),
        )
