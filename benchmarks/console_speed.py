"""`bbv console` against `socat UNIX-CONNECT:PATH -` over the same unix socket, side by side.

    python benchmarks/console_speed.py [--mib 64] [--rounds 5] [--pings 5000]

Throughput: this script listens on a unix socket and is the peer; the client (bbv console in pipe
mode, or socat) relays between that socket and its stdin/stdout pipes. Download: the peer sends
MiB random bytes, timed from accept until the last byte came out of the client's stdout. Upload:
the script writes them into the client's stdin, timed from accept until the peer has them all.
Process start-up is not in the time (it is in benchmarks/startup.py). Best of --rounds each,
alternating bbv and socat; peak RSS (VmHWM) of each client.

Latency: a separate echo process is the peer; one byte in through the client's stdin, back out of
its stdout, --pings round trips after 200 warm-up ones: median and p99.

Targets (the issue): throughput ratio bbv/socat >= 1.0; latency median within 0.1 ms of socat's."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ECHO_PEER = """
import os, socket, sys
srv = socket.socket(socket.AF_UNIX); srv.bind(sys.argv[1]); srv.listen(1)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.setblocking(True)
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.close()
"""


def clients(sock: str) -> dict[str, list[str]]:
    bbv = shutil.which("bbv", path=os.path.dirname(sys.executable)) or shutil.which("bbv")
    if bbv is None or shutil.which("socat") is None:
        sys.exit("needs bbv (pip install .) and socat")
    return {"bbv": [bbv, "console", "--linger", "0", sock],
            "socat": ["socat", f"UNIX-CONNECT:{sock}", "-"]}


def peak_rss(proc: subprocess.Popen) -> int:
    """The client's peak RSS in KiB so far (VmHWM: since exec, unlike wait4's ru_maxrss, which
    also counts the moment between fork and exec in a copy of this big process)."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def download(argv: list[str], srv: socket.socket, data: bytes) -> tuple[float, int]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    conn, _ = srv.accept()
    start = time.perf_counter()
    sender = threading.Thread(target=conn.sendall, args=(data,))
    sender.start()
    buf, got, fd = bytearray(1 << 20), 0, proc.stdout.fileno()
    while got < len(data):
        n = os.readv(fd, [buf])
        if n == 0:
            sys.exit(f"{argv[0]} stopped after {got} bytes")
        got += n
    elapsed = time.perf_counter() - start
    sender.join()
    kib = peak_rss(proc)
    conn.close()
    proc.stdin.close()
    proc.stdout.read()
    proc.wait()
    return elapsed, kib


def upload(argv: list[str], srv: socket.socket, data: bytes) -> tuple[float, int]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    conn, _ = srv.accept()
    start = time.perf_counter()

    def feed():
        proc.stdin.write(data)
        proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    buf, got = bytearray(1 << 20), 0
    while got < len(data):
        n = conn.recv_into(buf)
        if n == 0:
            sys.exit(f"{argv[0]} stopped after {got} bytes")
        got += n
    elapsed = time.perf_counter() - start
    writer.join()
    kib = peak_rss(proc)
    conn.close()
    proc.wait()
    return elapsed, kib


def latency(argv: list[str], pings: int) -> list[float]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out, inp = proc.stdout.fileno(), proc.stdin.fileno()
    times = []
    for i in range(200 + pings):
        start = time.perf_counter()
        os.write(inp, b"x")
        if os.read(out, 16) != b"x":
            sys.exit(f"{argv[0]}: echo lost")
        if i >= 200:
            times.append(time.perf_counter() - start)
    proc.stdin.close()
    proc.wait()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pings", type=int, default=5000)
    args = parser.parse_args()
    data = os.urandom(args.mib << 20)
    with tempfile.TemporaryDirectory(prefix="bbvbench") as tmp:
        sock = str(Path(tmp, "s"))
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(sock)
        srv.listen(1)
        tools = clients(sock)
        best: dict[tuple[str, str], float] = {}
        rss: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, argv in tools.items():
                for way, run in (("down", download), ("up", upload)):
                    elapsed, kib = run(argv, srv, data)
                    best[name, way] = min(best.get((name, way), elapsed), elapsed)
                    rss[name] = max(rss.get(name, 0), kib)
        srv.close()
        os.unlink(sock)
        print(f"throughput, {args.mib} MiB, best of {args.rounds} (MiB/s):")
        for way, label in (("down", "socket -> stdout"), ("up", "stdin -> socket")):
            rate = {n: args.mib / best[n, way] for n in tools}
            print(f"  {label}: bbv {rate['bbv']:.0f}, socat {rate['socat']:.0f}, "
                  f"ratio {rate['bbv'] / rate['socat']:.2f}")
        print(f"  peak RSS: bbv {rss['bbv'] / 1024:.1f} MiB, socat {rss['socat'] / 1024:.1f} MiB")

        peer = subprocess.Popen([sys.executable, "-c", ECHO_PEER, sock],
                                stdout=subprocess.PIPE, text=True)
        peer.stdout.readline()
        try:
            print(f"one-byte round trips, {args.pings} (ms):")
            medians = {}
            for name, argv in tools.items():
                times = sorted(latency(argv, args.pings))
                medians[name] = statistics.median(times) * 1e3
                p99 = times[int(len(times) * 0.99)] * 1e3
                print(f"  {name}: median {medians[name]:.3f}, p99 {p99:.3f}")
            print(f"  median difference bbv - socat: {medians['bbv'] - medians['socat']:+.3f}")
        finally:
            peer.kill()
            peer.wait()


if __name__ == "__main__":
    main()
