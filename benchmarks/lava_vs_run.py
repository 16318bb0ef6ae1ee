"""The same checks on a real barebox two ways: as the job `bbv export lava` writes, run by LAVA's
own dispatcher (`lava-run`, device dictionary rendered from lava-server's qemu.jinja2), and as
`bbv run --exec ...`. Wall time of each, median of --rounds, alternating.

    python benchmarks/lava_vs_run.py --device-types DIR -t vexpress -t riscv64 -t malta \\
        [--image TARGET=PATH ...] [--rounds 3]

DIR is usr/share/lava-server/device-types from lava-server's .deb (`apt-get download
lava-server && dpkg -x lava-server_*.deb X`). Images default to bbv's last build of each target.
Both sides boot with a virtio disk and a virtio RNG and run the same --exec commands, each
checked by its exit status; lava-run must end with "Job finished correctly" and every test case
"pass". Needs root (or a writable /var/lib/lava/dispatcher/tmp)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BBV = [sys.executable, "-m", "barebox_virtio_cli"]
COMMANDS = ["ls /dev/virtioblk0", "ls /dev/hwrng0", "version"]
LAVA_PYTHON = "/usr/bin/python3"


def timed(argv: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    return time.monotonic() - start, done


def lava_once(job: Path, device: Path, work: Path, n: int) -> float:
    seconds, done = timed(["lava-run", "--job-id", f"bbv-bench-{os.getpid()}-{job.stem}-{n}",
                           "--device", str(device), "--output-dir", str(work / f"out{n}"),
                           str(job)])
    log = done.stdout + done.stderr
    results = [yaml.safe_load(line)["msg"] for line in log.splitlines()
               if '"lvl": "results"' in line]
    cases = [r["result"] for r in results if r.get("definition") == "0_bbv"]
    if "Job finished correctly" not in log or cases != ["pass"] * len(COMMANDS):
        sys.exit(f"lava-run failed for {job}: cases {cases}\n{log[-2000:]}")
    return seconds


def bbv_once(args: list[str]) -> float:
    seconds, done = timed([*BBV, "run", *args, *(a for c in COMMANDS for a in ("--exec", c))])
    if done.returncode:
        sys.exit(f"bbv run failed: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device-types", required=True, type=Path)
    parser.add_argument("-t", "--target", action="append", required=True)
    parser.add_argument("--image", action="append", default=[], metavar="TARGET=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    images = dict(item.split("=", 1) for item in opts.image)
    with tempfile.TemporaryDirectory(prefix="bbv-lava-bench-") as tmp:
        work = Path(tmp)
        disk = work / "disk.img"
        disk.write_bytes(b"\0" * (1 << 20))
        for target in opts.target:
            args = ["-t", target, "--blk", str(disk), "--rng"]
            if target in images:
                args += ["--image", images[target]]
            job, device = work / f"{target}.yaml", work / f"{target}-device.yaml"
            subprocess.run([*BBV, "export", "lava", *args,
                            *(a for c in COMMANDS for a in ("--exec", c)), "-o", str(job)],
                           check=True, cwd=ROOT)
            subprocess.run([LAVA_PYTHON, str(ROOT / "tests" / "lava_device.py"),
                            str(opts.device_types), str(job), str(device)], check=True)
            lava, run = [], []
            for n in range(opts.rounds):
                lava.append(lava_once(job, device, work, n))
                run.append(bbv_once(args))
            print(f"{target:10} lava-run {statistics.median(lava):5.1f} s   "
                  f"bbv run {statistics.median(run):5.1f} s   "
                  f"(median of {opts.rounds}; lava-run {min(lava):.1f}-{max(lava):.1f}, "
                  f"bbv run {min(run):.1f}-{max(run):.1f})")


if __name__ == "__main__":
    main()
