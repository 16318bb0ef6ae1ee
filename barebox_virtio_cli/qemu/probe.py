"""What a QEMU binary can do (version, device types and their properties, machines), asked once
over QMP and cached under the cache dir, keyed on the binary's path, mtime and size."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu import qmp
from barebox_virtio_cli.qemu.info import QemuInfo
from barebox_virtio_cli.qemu.qmp import execute
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache
from barebox_virtio_cli.util.paths import cache_dir
from barebox_virtio_cli.util.processes import output, start_child, stop, watchdog

CACHE_FORMAT = 3
PROBE_TIMEOUT = 30  # seconds
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
    """Ask a `-M none` QEMU over QMP (qemu/qmp.py, on a socketpair), then its data dirs. One
    allowance of PROBE_TIMEOUT for the whole session, counted by util/processes.watchdog (no
    per-command timeout): a hung QEMU is killed, and the EOF ends whatever waits on it."""
    import socket
    import subprocess

    ours, theirs = socket.socketpair()
    argv = [binary, "-M", "none", "-S", "-nodefaults", "-display", "none",
            *qmp.fd_monitor_args(theirs.fileno())]
    try:
        proc = start_child(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),))
    except OSError as exc:
        ours.close()
        raise BbvError(f"could not ask {binary} what it supports: {exc}") from exc
    finally:
        theirs.close()
    monitor = None
    try:
        with watchdog(proc, PROBE_TIMEOUT) as fired:
            try:
                monitor = qmp.over_socket(ours, timeout=None)
                info = _ask(monitor, binary)
                qmp.execute(monitor, "quit")
            except Exception as exc:  # qemu.qmp's errors, EOFError, OSError: QEMU did not answer
                stop(proc)
                said = proc.stderr.read().decode(errors="replace").strip().splitlines()
                why = (f"no answer within {PROBE_TIMEOUT} s" if fired.is_set() and not said
                       else (said or [str(exc) or type(exc).__name__])[0])
                raise BbvError(f"{binary} did not answer QMP queries: {why}") from None
    finally:
        if monitor is not None:
            qmp.close(monitor)
        ours.close()
        stop(proc)
        proc.stderr.close()
    datadirs = output([binary, "-L", "help"], PROBE_TIMEOUT).splitlines()
    info.datadirs = [os.path.normpath(d) for d in datadirs if d.startswith("/")]
    return info


def _ask(monitor, binary: str) -> QemuInfo:
    v = execute(monitor, "query-version")["return"]["qemu"]
    info = QemuInfo(binary=binary, version=(v["major"], v["minor"], v["micro"]))
    info.types = {t["name"] for t in execute(monitor, "qom-list-types",
                                              implements="device")["return"]}
    for m in execute(monitor, "query-machines")["return"]:
        info.machines[m["name"]] = m["name"]
        if "alias" in m:
            info.machines[m["alias"]] = m["name"]
    info.cpus = sorted(c["name"] for c in execute(monitor, "query-cpu-definitions")
                       .get("return", []))
    for typename in PROBED_TYPES:
        reply = execute(monitor, "device-list-properties", typename=typename)
        if "return" in reply:
            info.properties[typename] = {p["name"] for p in reply["return"]}
    return info
