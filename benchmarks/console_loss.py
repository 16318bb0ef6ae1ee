"""Virtio console: bytes lost per run through bbv's relay vs QEMU's own socket chardev, quiet and
with busy loops, side by side in one run; and the relay's added one-byte round-trip latency.

    python benchmarks/console_loss.py --target vexpress --image .../barebox-dt-2nd.img \\
        [--target malta --image .../barebox-qemu-malta.img ...] [--runs 3] [--load 4]

Loss: real barebox, one boot per setup and load, --runs workloads each (devinfo; ls -l /dev;
help, 8 times, about 20-40 KB). A `bbv console --no-replay` client reads the virtio console; the
serial console of the same run is the reference (tests/console_load.py). 'relay' is
`bbv run --console SOCK`; 'qemu' is the command line `bbv run --dry-run` prints (QEMU serves
the socket). Load: --load processes of `while :; do :; done`, killed by pid afterwards.

Latency: QEMU's human monitor echoes what it is typed; one byte in, the first byte of its echo
back, 2000 round trips after 200 warm-up ones, straight to QEMU's socket chardev ('direct') and
through bbv's server on QEMU's pipe chardev ('relay'). Target: relay median < direct + 0.1 ms."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from console_load import Boot, busy_loops, stop_all  # noqa: E402

from barebox_virtio_cli.console.server import ConsoleServer  # noqa: E402


def loss(target: str, image: str, setup: str, load: int, runs: int, where: Path) -> list[str]:
    loops = busy_loops(load)
    boot = None
    try:
        boot = Boot(setup, target, image, where / f"{setup}{load}", "bbv")
        boot.prompt()
        results = [boot.measure() for _ in range(runs)]
    finally:
        stop_all(loops)
        if boot is not None:
            boot.close()
    lost = [r.lost for r in results]
    lines = [f"{target:9} {setup:6} {'quiet' if not load else f'{load} busy':7} "
             f"{results[0].expected:>8} {' '.join(f'{n:>6}' for n in lost)}   "
             f"{100 * sum(lost) / sum(r.expected for r in results):5.1f} %"]
    garbled = sum(len(r.missing) for r in results if not r.lost)
    if garbled:
        lines.append(f"  ({garbled} line(s) complete but garbled next to barebox's poller "
                     "warnings)")
    return lines


def monitor(chardev: str) -> subprocess.Popen:
    return subprocess.Popen(["qemu-system-arm", "-M", "none", "-S", "-nodefaults", "-display",
                             "none", "-chardev", chardev, "-mon", "chardev=con0"],
                            stdin=subprocess.DEVNULL)


def pings(path: Path, count: int = 2000, warmup: int = 200) -> list[float]:
    sock = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.connect(str(path))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    time.sleep(0.5)
    sock.setblocking(False)
    with_drain(sock)
    sock.setblocking(True)
    times = []
    for i in range(warmup + count):
        key = b"a" if i % 2 == 0 else b"\x7f"  # type a letter, rub it out: the line stays short
        start = time.perf_counter()
        sock.sendall(key)
        sock.recv(4096)
        times.append(time.perf_counter() - start)
        time.sleep(0.0005)
        sock.setblocking(False)
        with_drain(sock)
        sock.setblocking(True)
    sock.close()
    return times[warmup:]


def with_drain(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass


def latency(where: Path) -> list[str]:
    direct_path = where / "direct"
    qemu = monitor(f"socket,id=con0,path={direct_path},server=on,wait=off")
    try:
        direct = pings(direct_path)
    finally:
        qemu.terminate()
        qemu.wait()
    with ConsoleServer(where / "relay", tmpdir=str(where)) as server:
        qemu = monitor(f"pipe,id=con0,path={server.fifo_base}")
        try:
            relay = pings(server.path)
        finally:
            qemu.terminate()
            qemu.wait()
    lines = []
    for name, times in (("direct", direct), ("relay", relay)):
        ms = sorted(t * 1000 for t in times)
        lines.append(f"{name:7} median {statistics.median(ms):.3f} ms   p99 "
                     f"{ms[int(len(ms) * 0.99)]:.3f} ms")
    added = statistics.median(relay) - statistics.median(direct)
    lines.append(f"added by the relay: {added * 1000:.3f} ms median (target < 0.1 ms)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load", type=int, default=4)
    args = parser.parse_args()
    if len(args.target) != len(args.image):
        parser.error("give one --image per --target")
    where = Path(tempfile.mkdtemp(prefix="bbvl", dir="/tmp"))
    os.environ.setdefault("BBV_RUNTIME_DIR", str(where))
    print(f"loadavg at start: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    print("target    setup  load    expected  lost per run (bytes)   lost total")
    for target, image in zip(args.target, args.image, strict=True):
        for load in (0, args.load):
            for setup in ("relay", "qemu"):
                for line in loss(target, image, setup, load, args.runs, where):
                    print(line, flush=True)
    print("\none-byte round trip through QEMU's monitor echo:")
    for line in latency(where):
        print(line)


if __name__ == "__main__":
    main()
