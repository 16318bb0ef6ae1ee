"""N targets on a LAVA farm with one worker against the same with two, side by side in one run:
`bbv lava submit` of the same N jobs (the targets, each --repeat times), wall time from submit
to the table, on the LAVA instance of tests/lava_farm.py with two lava-worker processes on this
host, each with one qemu device. "One worker": the second worker's device is put in
Maintenance, so every job waits for the first one. Alternating, median of --rounds.

    python benchmarks/lava_workers.py [-t vexpress -t riscv64 -t malta] [--repeat 1]
        [--rounds 3] [--exec version ...]

Images: bbv's last build of each target (file:// URLs, the workers are on this host). Every
job must complete with every test case passed. Needs root (tests/lava_farm.py)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import lava_farm  # noqa: E402

BBV = [sys.executable, "-m", "barebox_virtio_cli"]


def jobs(targets: list[str], repeat: int, commands: list[str], out: Path) -> list[str]:
    paths = []
    execs = [a for c in commands for a in ("--exec", c)]
    for n in range(repeat):
        for target in targets:
            path = out / f"{target}-{n}.yaml"
            subprocess.run([*BBV, "export", "lava", "-t", target, *execs, "--job-name",
                            f"{target} {n}", "-o", str(path), "--force"], check=True,
                           capture_output=True)
            paths.append(str(path))
    return paths


def once(files: list[str], env: dict[str, str]) -> tuple[float, list[dict]]:
    start = time.monotonic()
    done = subprocess.run([*BBV, "lava", "submit", *files, "--json"], env=env,
                          capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    report = json.loads(done.stdout or "{}").get("jobs", [])
    if done.returncode != 0:
        sys.exit(f"bbv lava submit failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--target", dest="targets", action="append")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exec", dest="commands", action="append")
    args = parser.parse_args()
    targets = args.targets or ["vexpress", "riscv64", "malta"]
    commands = args.commands or ["version", "ls /dev"]
    times: dict[int, list[float]] = {1: [], 2: []}
    per_job: dict[int, list[float]] = {1: [], 2: []}
    with lava_farm.session(2) as farm, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BBV_LAVA_URL": farm.url, "BBV_LAVA_TOKEN": farm.token}
        try:
            files = jobs(targets, args.repeat, commands, Path(tmp))
            for _ in range(args.rounds):
                for workers in (1, 2):
                    lava_farm.use_devices(workers)
                    seconds, report = once(files, env)
                    used = sorted({job["worker"] for job in report})
                    times[workers].append(seconds)
                    per_job[workers] += [job["duration"] for job in report]
                    print(f"{workers} worker(s) {used}: {len(files)} jobs in {seconds:.1f} s",
                          flush=True)
        finally:
            lava_farm.use_devices(2)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"\n{len(files)} jobs ({', '.join(targets)} x{args.repeat}), median of "
          f"{args.rounds}:")
    print(f"  one worker:  {one:.1f} s (job on the worker: median "
          f"{statistics.median(per_job[1]):.1f} s)")
    print(f"  two workers: {two:.1f} s (job on the worker: median "
          f"{statistics.median(per_job[2]):.1f} s), {two / one:.2f}x")


if __name__ == "__main__":
    main()
