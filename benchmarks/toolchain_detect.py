"""Toolchain detection time, as `bbv build` does it before running make: for every catalog
target, Finder.default().find() (candidates from the environment, config file, fetched
toolchains, PATH and /opt/*/bin, each checked with `gcc -dumpmachine`), in process.

    python benchmarks/toolchain_detect.py [--runs 50]

Cold = empty probe cache (every compiler run); warm = the cache a previous run left.
Requirement: warm detection under 20 ms per target. Uses a private cache directory."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def detect_ms(target, defconfig: str) -> tuple[float, str]:
    from barebox_virtio_cli.build.toolchain import Finder
    from barebox_virtio_cli.errors import BbvError

    start = time.perf_counter()
    try:
        found = Finder.default().find(target, defconfig).prefix
    except BbvError:
        found = "(none)"
    return (time.perf_counter() - start) * 1000, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BBV_CACHE_DIR"] = tmp
        from barebox_virtio_cli.targets.catalog import load_catalog

        catalog = load_catalog()
        worst = 0.0
        print(f"{'target':<10} {'cold ms':>8} {'warm ms (median)':>17} {'max':>6}  compiler")
        for name in catalog.names():
            target = catalog.targets[name]
            defconfig = target.defconfigs[-1]
            cold, found = detect_ms(target, defconfig)
            warm = [detect_ms(target, defconfig)[0] for _ in range(runs)]
            worst = max(worst, statistics.median(warm))
            print(f"{name:<10} {cold:8.1f} {statistics.median(warm):17.2f} {max(warm):6.2f}  "
                  f"{found}")
    print(f"worst warm median: {worst:.2f} ms (requirement < 20 ms)")


if __name__ == "__main__":
    main()
