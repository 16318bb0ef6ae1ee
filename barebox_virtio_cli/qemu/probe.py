"""What a QEMU binary can do (version, device types and their properties, machines), asked once
over QMP and cached under the cache dir, keyed on the binary's path, mtime and size."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache

CACHE_FORMAT = 3
# Types whose properties bbv needs to know: every virtio device it may generate, both transports.
PROBED_TYPES = [
    f"virtio-{kind}-{bus}"
    for kind in ("blk", "rng", "serial", "keyboard", "net", "9p")
    for bus in ("pci", "device")
] + ["virtio-mmio"]


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


def find_binary(name: str, package: str = "") -> str:
    path = on_path(name)
    if path is None:
        hint = f" (Debian/Ubuntu: apt install {package})" if package else ""
        raise BbvError(f"{name} is not installed or not on PATH{hint}")
    return path


def _cache_file() -> Path:
    from barebox_virtio_cli.util.paths import cache_dir

    return cache_dir() / "qemu-probes.json"


def probe(binary_path: str, use_cache: bool = True) -> QemuInfo:
    """QemuInfo for an absolute binary path; the QMP session runs only on a cache miss."""
    real = os.path.realpath(binary_path)
    cache_path = _cache_file()
    cache: dict = {}
    if use_cache:
        cache = read_object(cache_path) or {}
        if cache.get("format") != CACHE_FORMAT:
            cache = {"format": CACHE_FORMAT}
        entry = cache.get("probes", {}).get(real)
        if entry and entry.get("stamp") == stamp(real):
            return QemuInfo.from_json(entry["info"])
    info = _probe_qmp(binary_path)
    if use_cache:
        cache.setdefault("probes", {})[real] = {"stamp": stamp(real), "info": info.to_json()}
        write_cache(cache_path, cache)
    return info


def _probe_qmp(binary: str) -> QemuInfo:
    import subprocess

    from barebox_virtio_cli.util.processes import set_parent_death_signal

    requests = [{"execute": "qmp_capabilities"},
                {"execute": "query-version"},
                {"execute": "qom-list-types", "arguments": {"implements": "device"}},
                {"execute": "query-machines"},
                {"execute": "query-cpu-definitions"}]
    requests += [{"execute": "device-list-properties", "arguments": {"typename": t}}
                 for t in PROBED_TYPES]
    requests.append({"execute": "quit"})
    argv = [binary, "-M", "none", "-S", "-nodefaults", "-display", "none", "-qmp", "stdio"]
    try:
        proc = subprocess.run(argv, input="\n".join(json.dumps(r) for r in requests) + "\n",
                              capture_output=True, text=True, timeout=30, check=False,
                              preexec_fn=set_parent_death_signal)  # no orphan if bbv is killed
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BbvError(f"could not ask {binary} what it supports: {exc}") from exc
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    answers = [r for r in replies if "return" in r or "error" in r]
    if len(answers) < len(requests) - 1:
        first = (proc.stderr.strip().splitlines() or ["no answer"])[0]
        raise BbvError(f"{binary} did not answer QMP queries: {first}")
    _, version, types, machines, cpus, *props = answers[: len(requests) - 1]
    v = version["return"]["qemu"]
    info = QemuInfo(binary=binary, version=(v["major"], v["minor"], v["micro"]))
    info.types = {t["name"] for t in types["return"]}
    for m in machines["return"]:
        info.machines[m["name"]] = m["name"]
        if "alias" in m:
            info.machines[m["alias"]] = m["name"]
    info.cpus = sorted(c["name"] for c in cpus.get("return", []))
    for typename, reply in zip(PROBED_TYPES, props, strict=True):
        if "return" in reply:
            info.properties[typename] = {p["name"] for p in reply["return"]}
    datadirs = subprocess.run([binary, "-L", "help"], capture_output=True, text=True,
                              timeout=30, check=False).stdout.splitlines()
    info.datadirs = [os.path.normpath(d) for d in datadirs if d.startswith("/")]
    return info
