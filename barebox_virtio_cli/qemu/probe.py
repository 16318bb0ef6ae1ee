"""What a QEMU binary can do (version, device types and their properties, machines), asked once
over QMP and cached under the cache dir, keyed on the binary's path, mtime and size."""

from __future__ import annotations

import json
import os
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache

CACHE_FORMAT = 2
# Types whose properties bbv needs to know: every virtio device it may generate, both transports.
PROBED_TYPES = [
    f"virtio-{kind}-{bus}"
    for kind in ("blk", "rng", "serial", "keyboard", "net", "9p")
    for bus in ("pci", "device")
] + ["virtio-mmio"]


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
                {"execute": "query-machines"}]
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
    _, version, types, machines, *props = answers[: len(requests) - 1]
    v = version["return"]["qemu"]
    info = QemuInfo(binary=binary, version=(v["major"], v["minor"], v["micro"]))
    info.types = {t["name"] for t in types["return"]}
    for m in machines["return"]:
        info.machines[m["name"]] = m["name"]
        if "alias" in m:
            info.machines[m["alias"]] = m["name"]
    for typename, reply in zip(PROBED_TYPES, props, strict=True):
        if "return" in reply:
            info.properties[typename] = {p["name"] for p in reply["return"]}
    datadirs = subprocess.run([binary, "-L", "help"], capture_output=True, text=True,
                              timeout=30, check=False).stdout.splitlines()
    info.datadirs = [os.path.normpath(d) for d in datadirs if d.startswith("/")]
    return info
