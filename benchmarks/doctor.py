"""Wall time of `bbv doctor` for all targets: cold (empty cache dir: every QEMU binary is
probed over QMP and every compiler asked for -dumpmachine) and warm (cached probes).
Median of N runs each.

    python benchmarks/doctor.py [--runs 10]"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "barebox_virtio_cli", "doctor", *args], env=env,
                   check=False, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "BBV_CACHE_DIR": cache}
            cold.append(timed(["--json"], env))
            warm.append(timed(["--json"], env))
    table = timed([], {**os.environ, "COLUMNS": "100"})
    print(f"bbv doctor --json, all targets: cold median {statistics.median(cold):.2f} s, "
          f"warm median {statistics.median(warm):.2f} s ({runs} runs); "
          f"table output (warm) {table:.2f} s")


if __name__ == "__main__":
    main()
