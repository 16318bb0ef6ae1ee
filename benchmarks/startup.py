"""Start-up cost of `bbv run --dry-run` against the floor the design card sets: the same
interpreter importing click. Alternating runs, median of N each, warm QEMU probe cache.

    python benchmarks/startup.py [--runs 20]

Target: ratio <= 2.0. Byte code is compiled first, as `pip install` does: with
PYTHONDONTWRITEBYTECODE set, an editable install would otherwise compile bbv on every run.
bbv's cache and state dirs are private to the run: other bbv checkouts rewrite the shared
catalog cache (keyed on the target files' paths), and a shared state dir may point the image
lookup at other builds."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], cwd: str) -> float:
    env = {**os.environ, "BBV_CACHE_DIR": f"{cwd}/cache", "BBV_STATE_DIR": f"{cwd}/state"}
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    bbv = shutil.which("bbv", path=os.path.dirname(sys.executable)) or shutil.which("bbv")
    if bbv is None:
        sys.exit("bbv is not installed next to this interpreter (pip install .)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "images").mkdir()
        Path(tmp, "images", "barebox-dt-2nd.img").write_bytes(bytes(4096))
        for disk in ("a.img", "b.img"):
            Path(tmp, disk).write_bytes(bytes(4096))
        bbv_argv = [bbv, "run", "--target", "vexpress", "--blk", "a.img", "--blk", "b.img",
                    "--rng", "--rng", "--console", f"{tmp}/c.sock", "--input", "--dry-run"]
        click_argv = [sys.executable, "-c", "import click"]
        import barebox_virtio_cli

        package = os.path.dirname(barebox_virtio_cli.__file__)
        subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True,
                       stdout=subprocess.DEVNULL)
        timed(bbv_argv, tmp)  # warms the QEMU probe cache
        samples: dict[str, list[float]] = {"click": [], "bbv": []}
        for _ in range(runs):
            samples["click"].append(timed(click_argv, tmp))
            samples["bbv"].append(timed(bbv_argv, tmp))
    click_ms = statistics.median(samples["click"]) * 1000
    bbv_ms = statistics.median(samples["bbv"]) * 1000
    print(f"python -c 'import click': median {click_ms:.1f} ms over {runs} runs")
    print(f"bbv run ... --dry-run:    median {bbv_ms:.1f} ms over {runs} runs")
    print(f"ratio: {bbv_ms / click_ms:.2f} (target <= 2.0)")


if __name__ == "__main__":
    main()
