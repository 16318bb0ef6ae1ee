"""Every target's generated command line, started by real QEMU (paused with -S, a stand-in
image), inspected over QMP: drives and their files, device types and properties, the console
socket, force-legacy, and the transport order barebox will see."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT
from qemu_helpers import parse_qtree, synthetic_info

from barebox_virtio_cli.qemu.args import (
    EnvEntry,
    RunSpec,
    build_command,
    flatten,
    fw_cfg_usable,
    parse_port_forward,
)
from barebox_virtio_cli.qemu.probe import find_binary, probe
from barebox_virtio_cli.targets.catalog import load_catalog

CATALOG = load_catalog([ROOT / "configs"])
pytestmark = pytest.mark.qemu


def installed(target):
    return pytest.param(target, marks=pytest.mark.skipif(
        shutil.which(CATALOG.get(target).qemu) is None, reason=f"{CATALOG.get(target).qemu} "
        "not installed (tests/run.sh installs it)"))


TARGETS = [installed(name) for name in CATALOG.names()]


@pytest.fixture
def short_tmp():
    """Unix socket paths must stay short; pytest's tmp_path can be long."""
    path = Path(f"/tmp/bbv-q{os.getpid()}")
    path.mkdir(exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class PausedQemu:
    def __init__(self, argv: list[str], qmp_path: Path):
        from qemu.qmp.legacy import QEMUMonitorProtocol

        self.proc = subprocess.Popen(argv + ["-S"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not qmp_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"QEMU did not start: {self.proc.communicate()[1]!r}")
            time.sleep(0.02)
        while True:  # the socket file appears just before QEMU listens on it
            self.qmp = QEMUMonitorProtocol(str(qmp_path))
            try:
                self.qmp.connect()
                break
            except Exception as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError(f"no QMP: {self.proc.communicate()[1]!r}") from exc
                time.sleep(0.05)

    def cmd(self, name: str, **args):
        return self.qmp.cmd(name, **args)

    def close(self):
        # QEMU may drop the connection before its reply to quit; its exit is checked below.
        with contextlib.suppress(EOFError, OSError):
            self.qmp.cmd("quit")
        with contextlib.suppress(EOFError, OSError):
            self.qmp.close()
        try:
            assert self.proc.wait(10) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def start(target_name: str, tmp: Path, **spec_args):
    target = CATALOG.get(target_name)
    info = probe(find_binary(target.qemu))
    image = tmp / target.image
    image.write_bytes(bytes(64 * 1024))
    spec = RunSpec(image=image, serial="null", qmp=tmp / "qmp.sock", **spec_args)
    if target.firmware:
        spec.firmware = next((f for f in target.firmware if os.path.isfile(f)), None)
        if spec.firmware is None:
            pytest.skip(f"firmware not installed: {target.firmware_package}")
    elif target.qemu_firmware and not info.data_file(target.qemu_firmware):
        spec.firmware = str(tmp / "stand-in-firmware.bin")  # Debian lacks riscv32 OpenSBI
        Path(spec.firmware).write_bytes(bytes(4096))
    return target, info, PausedQemu(flatten(build_command(target, spec, info)), spec.qmp)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", TARGETS)
def test_real_qemu_carries_every_device_as_generated(name, short_tmp):
    a, b = short_tmp / "a.img", short_tmp / "b,c.img"
    a.write_bytes(bytes(1 << 20))
    b.write_bytes(bytes(2 << 20))
    share = short_tmp / "share"
    share.mkdir()
    console = short_tmp / "con.sock"
    target = CATALOG.get(name)
    info = probe(find_binary(target.qemu))
    env = [EnvEntry("nv/boot.default", "net")] if fw_cfg_usable(target, info) else []
    target, info, vm = start(name, short_tmp, blks=[a, b], rng=2, console=console, input=True,
                             net=True, port_forwards=[parse_port_forward(str(free_port()))],
                             fs=[("share", share)], env=env)
    try:
        blocks = {b["device"]: b for b in vm.cmd("query-block") if "inserted" in b}
        assert [blocks[d]["inserted"]["file"] for d in ("hd0", "hd1")] == [str(a), str(b)]
        assert "blk0" in blocks["hd0"]["qdev"] and "blk1" in blocks["hd1"]["qdev"]
        assert blocks["hd0"]["inserted"]["image"]["format"] == "raw"
        assert not blocks["hd0"]["inserted"]["ro"]
        chardevs = {c["label"]: c["filename"] for c in vm.cmd("query-chardev")}
        assert chardevs["con0"].endswith(f"unix:{console},server=on")
        tree = parse_qtree(vm.cmd("human-monitor-command", **{"command-line": "info qtree"}))
    finally:
        vm.close()
    by_id = {d.id: d for d in tree if d.id}
    suffix = "device" if target.transport == "mmio" else "pci"
    for dev_id, kind in [("vser0", "serial"), ("rng0", "rng"), ("rng1", "rng"), ("blk0", "blk"),
                         ("blk1", "blk"), ("kbd0", "keyboard"), ("nic0", "net"),
                         ("p9fs0", "9p")]:
        node = by_id[dev_id]
        assert node.type == f"virtio-{kind}-{suffix}"
        if target.transport == "pci":
            assert node.props["disable-legacy"] == "on"
            assert node.props["disable-modern"] == "false"
    virtconsoles = [d for d in tree if d.type == "virtconsole"]
    assert [(d.props["name"], d.props["chardev"]) for d in virtconsoles] == [
        ("console.con0", "con0")]
    transports = [d for d in tree if d.type == "virtio-mmio"]
    if target.transport == "mmio":
        assert len(transports) == target.mmio_transports
        assert {t.props["force-legacy"] for t in transports} == {"false"}
    else:
        assert transports == []


@pytest.mark.parametrize("name", [installed("vexpress"), installed("armv8")])
def test_arm_virt_first_blk_sits_on_the_lowest_transport(name, short_tmp):
    """barebox numbers virtio-mmio devices from the lowest address: blk0 must be lowest."""
    disks = []
    for i in range(3):
        disks.append(short_tmp / f"d{i}.img")
        disks[-1].write_bytes(bytes(1 << 20))
    _, _, vm = start(name, short_tmp, blks=disks)
    try:
        tree = parse_qtree(vm.cmd("human-monitor-command", **{"command-line": "info qtree"}))
    finally:
        vm.close()
    by_id = {d.id: d for d in tree if d.id}
    addresses = [by_id[f"blk{i}"].parent.mmio[0] for i in range(3)]
    assert addresses == sorted(addresses)
    lowest = min(t.mmio[0] for t in tree if t.type == "virtio-mmio")
    assert addresses[0] == lowest


@pytest.mark.parametrize("name", TARGETS)
def test_synthetic_probe_used_by_golden_files_matches_real_qemu(name):
    target = CATALOG.get(name)
    real = probe(find_binary(target.qemu))
    fake = synthetic_info(mmio="virtio-mmio" in real.types)
    for typename in fake.properties:
        for prop in ("disable-legacy", "disable-modern", "force-legacy"):
            assert real.has_property(typename, prop) == fake.has_property(typename, prop), (
                typename, prop)
    suffix = "device" if target.transport == "mmio" else "pci"
    for kind in ("blk", "rng", "serial", "keyboard", "net", "9p"):
        assert f"virtio-{kind}-{suffix}" in real.types


def test_probe_is_cached_on_path_and_mtime(tmp_path):
    from barebox_virtio_cli.errors import BbvError

    binary = tmp_path / "qemu-system-arm"
    shutil.copy2(find_binary("qemu-system-arm"), binary)
    assert probe(str(binary)).version >= (4, 2, 0)
    stamp = os.stat(binary)
    script = b"#!/bin/sh\nexit 1\n"
    binary.write_bytes(script + b"#" * (stamp.st_size - len(script)))
    os.utime(binary, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert probe(str(binary)).version >= (4, 2, 0)  # same path, mtime, size: from the cache
    os.utime(binary, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    with pytest.raises(BbvError, match="did not answer QMP"):
        probe(str(binary))  # mtime changed: the binary itself is asked again


# A probe in a process group of its own that stops the whole group (itself, its watchdog and
# QEMU) once QEMU has greeted: what a stalled host does to every process at once.
STALLING_PROBE = """
import os, signal, sys
from barebox_virtio_cli.qemu import probe, qmp
probe.PROBE_TIMEOUT = qmp.TIMEOUT = float(sys.argv[2])
ask = probe._ask

def stalled(monitor, binary):
    os.killpg(0, signal.SIGSTOP)
    return ask(monitor, binary)

probe._ask = stalled
print(probe.probe(sys.argv[1], use_cache=False).version)
"""


def test_probe_outlasts_a_stall_of_the_whole_host():
    """A host that runs nothing for longer than the probe's allowance (seen in CI: 10 to 30 s
    freezes on a loaded VM) stops QEMU as much as bbv: on waking, QEMU answers. The probe's
    allowance counts running time, so the stall costs one step of it, not the whole."""
    import signal
    import sys

    allowance, stall = 4, 6
    proc = subprocess.Popen([sys.executable, "-c", STALLING_PROBE, find_binary("qemu-system-arm"),
                             str(allowance)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        time.sleep(stall)  # longer than the allowance
        os.killpg(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, err
    assert out.startswith("(") and "did not answer" not in err


def test_a_qemu_that_never_answers_is_killed_after_the_allowance(tmp_path, monkeypatch):
    from barebox_virtio_cli.errors import BbvError
    from barebox_virtio_cli.qemu import probe as probing

    mute = tmp_path / "qemu-system-mute"
    mute.write_text(f"#!/bin/sh\nexec sleep {600 + os.getpid() % 1000}\n")
    mute.chmod(0o755)
    monkeypatch.setattr(probing, "PROBE_TIMEOUT", 1)
    started = time.monotonic()
    with pytest.raises(BbvError, match=f"^{mute} did not answer QMP queries: no answer within "
                                        "1 s$"):
        probe(str(mute), use_cache=False)
    assert time.monotonic() - started >= 1
    assert subprocess.run(["pgrep", "-f", f"sleep {600 + os.getpid() % 1000}"]).returncode == 1
