"""The edit-build-boot loop on a real barebox tree, side by side in one run, per target:

  loop:   touch commands/version.c, then `bbv run -t T --build --exec version`
          against `make` (every image, in the same build directory) + `bbv run --exec version`
  ccache: `bbv build T --clean` with a warm ccache against `bbv build T --clean --no-ccache`

    python benchmarks/build_loop.py TREE [--targets vexpress riscv64 malta] [--runs 2]

TREE is a barebox source tree of your own (a copy: it is built in, in TREE/build-T, and in
TREE/build-T-ccache and TREE/build-T-nocache for the clean builds). The ccache runs use a
fresh CCACHE_DIR in a temporary directory. Nothing here is a test; the figures go in README."""

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


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"failed: {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def make_argv(record: dict, out: Path) -> list[str]:
    return ["make", f"-j{os.cpu_count()}", f"ARCH={record['arch']}", f"O={out}",
            f"CROSS_COMPILE={record['toolchain']}"]


def loop(bbv: str, tree: Path, target: str, runs: int, env: dict[str, str]) -> None:
    out = tree / f"build-{target}"
    base = [bbv, "build", target, "--src", str(tree), "-O", str(out)]
    timed(base, env, tree)  # settle the directory (a copied tree recompiles once)
    record = json.loads((out / "bbv-build.json").read_text())
    timed(make_argv(record, out), env, tree)  # every image current, as after a plain make
    image = record["image"]
    run_built = [bbv, "run", "-t", target, "--build", "--src", str(tree), "-O", str(out),
                 "--exec", "version", "--expect", "barebox"]
    run_image = [bbv, "run", "-t", target, "--image", image, "--exec", "version",
                 "--expect", "barebox"]
    version_c = tree / "commands" / "version.c"
    ours, theirs, makes = [], [], []
    for _ in range(runs):
        version_c.touch()
        ours.append(timed(run_built, env, tree))
        version_c.touch()
        make_s = timed(make_argv(record, out), env, tree)
        makes.append(make_s)
        theirs.append(make_s + timed(run_image, env, tree))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{target} loop (touch commands/version.c, build, boot, 'version'), median of {runs}: "
          f"bbv run --build {a:.1f} s; make + bbv run {b:.1f} s (make alone "
          f"{statistics.median(makes):.1f} s); ratio {a / b:.2f}", flush=True)


def clean_builds(bbv: str, tree: Path, target: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bbv-bench-ccache-") as cache:
        cenv = {**env, "CCACHE_DIR": cache}
        cached = [bbv, "build", target, "--src", str(tree), "-O",
                  str(tree / f"build-{target}-ccache"), "--clean"]
        timed(cached, cenv, tree)  # fills the cache
        warm = timed(cached, cenv, tree)
        plain = timed([bbv, "build", target, "--src", str(tree), "-O",
                       str(tree / f"build-{target}-nocache"), "--clean", "--no-ccache"],
                      cenv, tree)
        stats = subprocess.run(["ccache", "--print-stats"], env=cenv, capture_output=True,
                               text=True).stdout
    hits = {k: v for k, v in (line.split("\t") for line in stats.splitlines())
            if k in ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss")}
    print(f"{target} --clean rebuild: warm ccache {warm:.1f} s, without ccache {plain:.1f} s; "
          f"ratio {warm / plain:.2f} (ccache: {hits})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", type=Path)
    parser.add_argument("--targets", nargs="+", default=["vexpress", "riscv64", "malta"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", choices=("loop", "ccache"), help="Run one of the two.")
    args = parser.parse_args()
    bbv = shutil.which("bbv", path=os.path.dirname(sys.executable)) or shutil.which("bbv")
    if bbv is None:
        sys.exit("bbv is not installed next to this interpreter (pip install .)")
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory(prefix="bbv-bench-state-") as state:
        env = {**os.environ, "BBV_STATE_DIR": state}  # the index of the user's builds stays
        for target in [] if args.only == "ccache" else args.targets:
            loop(bbv, tree, target, args.runs, env)
        for target in [] if args.only == "loop" else args.targets:
            clean_builds(bbv, tree, target, env)


if __name__ == "__main__":
    main()
