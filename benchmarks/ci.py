"""`bbv test --ci JOB` beside the way to run a CI job locally without bbv, after a one-file
change: barebox's `MAKEALL -i` with CI's KCONFIG_ADD and the job's yamls (it configures and
builds the defconfig once per yaml, then runs pytest on that yaml), and `bbv test --ci JOB -j N`
(one incremental build, the envs N at a time). Each round touches the same source file (an
empty line appended, then removed), then times one, touches it again and times the other,
alternating which goes first. Prints the wall times, their ratio and each env's counts.

    python benchmarks/ci.py --src ~/barebox [--job multi_v7_defconfig] [--rounds 1] [-j 2]
        [--makeall-dir DIR] [--bbv-dir DIR] [--file common/version.c]

The builds must exist: --makeall-dir holds MAKEALL's (CI's build-ARCH-DEFCONFIG), --bbv-dir
the parent of bbv's (`bbv test --ci JOB -O DIR` first). Writes into those build directories,
the one source file (restored at the end) and a temporary directory."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from barebox_virtio_cli.ci import matrix


def touch(path: Path, original: str, changed: bool) -> None:
    path.write_text(original + "\n" if changed else original)


def makeall(src: Path, job: matrix.JobPlan, build: Path, log: Path) -> tuple[float, dict]:
    from barebox_virtio_cli.build.service import find_toolchain

    prefix = os.environ.get("CROSS_COMPILE") or \
        find_toolchain(src, job.job.arch, job.job.defconfig).prefix
    env = {**os.environ, "ARCH": job.job.arch, "KCONFIG_ADD": " ".join(job.fragments),
           "CROSS_COMPILE": prefix}
    argv = ["./MAKEALL", "-i", "-O", str(build), "-l", "", "-v", "0",
            *[e.path for e in job.envs]]
    started = time.monotonic()
    with open(log, "w") as out:
        subprocess.run(argv, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, check=False)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    counts = {}
    for yaml, line in zip([e.name for e in job.envs],
                          re.findall(r"^=+ (.* in [\d.]+s) =+$", text, re.MULTILINE),
                          strict=False):
        counts[yaml] = line
    builds = len(re.findall(r"^Building ", text, re.MULTILINE))
    return seconds, {"builds": builds, **counts}


def bbv(src: Path, job: str, base: Path, jobs: int) -> tuple[float, dict]:
    argv = [sys.executable, "-m", "barebox_virtio_cli", "test", "--ci", job, "--src", str(src),
            "-O", str(base), "-j", str(jobs), "--json"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False)
    seconds = time.monotonic() - started
    try:
        results = json.loads(done.stdout)
    except ValueError:
        sys.exit(f"bbv test --ci failed: {done.stderr[-2000:]}")
    counts = {r["env"]: f"{r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped, "
              f"{r['xfailed']} xfailed, {r['errors']} errors" for r in results}
    builds = {r["build_seconds"] for r in results if r["build_seconds"] is not None}
    return seconds, {"builds": len(builds), "build_seconds": sorted(builds), **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--job", default="multi_v7_defconfig")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--makeall-dir", type=Path)
    parser.add_argument("--bbv-dir", type=Path)
    parser.add_argument("--file", default="common/version.c")
    args = parser.parse_args()
    src = args.src.resolve()
    plan = matrix.load(src, [args.job])
    [job] = plan.jobs
    makeall_dir = (args.makeall_dir or src / job.job.build_name).resolve()
    bbv_dir = (args.bbv_dir or src).resolve()
    source = src / args.file
    original = source.read_text()
    times: dict[str, list[float]] = {"makeall": [], "bbv": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(args.rounds):
                order = ["makeall", "bbv"] if n % 2 == 0 else ["bbv", "makeall"]
                for which in order:
                    runs = len(times["makeall"]) + len(times["bbv"])
                    touch(source, original, changed=runs % 2 == 0)  # a change before each run
                    if which == "makeall":
                        seconds, facts = makeall(src, job, makeall_dir, Path(tmp) / "makeall.log")
                    else:
                        seconds, facts = bbv(src, args.job, bbv_dir, args.jobs)
                    times[which].append(seconds)
                    print(f"round {n + 1} {which}: {seconds:.1f} s {json.dumps(facts)}",
                          flush=True)
    finally:
        source.write_text(original)
    best = {k: min(v) for k, v in times.items()}
    print(f"MAKEALL -i with {len(job.envs)} yamls: {best['makeall']:.1f} s; bbv test --ci "
          f"-j {args.jobs}: {best['bbv']:.1f} s; ratio {best['bbv'] / best['makeall']:.2f}")


if __name__ == "__main__":
    main()
