"""Wall time of the issue's scripted boot against a real vexpress barebox, on the serial and
on the virtio console: median of N runs each, with bbv's own boot and command times.

    python benchmarks/scripted_boot.py IMAGE [--runs 10]

IMAGE is a vexpress barebox-dt-2nd.img (multi_v7_defconfig), e.g. from `bbv build vexpress`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = ["--blk", "a.img", "--blk", "b.img", "--rng", "--exec", "ls /dev",
           "--expect", "virtioblk0", "--expect", "virtioblk1", "--expect", "hwrng0", "--json"]


def one_run(argv: list[str], cwd: str) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(done.stdout)
    if done.returncode or not report["ok"]:
        sys.exit(f"scripted boot failed:\n{done.stderr}")
    return wall, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    bbv = shutil.which("bbv", path=os.path.dirname(sys.executable)) or shutil.which("bbv")
    if bbv is None:
        sys.exit("bbv is not installed next to this interpreter (pip install .)")
    image = str(Path(args.image).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        for disk in ("a.img", "b.img"):
            Path(tmp, disk).write_bytes(bytes(1 << 20))
        for label, extra in (("serial", []), ("virtio console", ["--console", "c.sock"])):
            argv = [bbv, "run", "--target", "vexpress", "--image", image, *EXAMPLE, *extra]
            runs = [one_run(argv, tmp) for _ in range(args.runs)]
            wall = statistics.median(w for w, _ in runs)
            boot = statistics.median(r["boot"]["duration"] for _, r in runs)
            command = statistics.median(r["commands"][0]["duration"] for _, r in runs)
            print(f"{label}: median of {args.runs}: wall {wall:.2f} s, boot to prompt "
                  f"{boot:.2f} s, 'ls /dev' {command:.3f} s")


if __name__ == "__main__":
    main()
