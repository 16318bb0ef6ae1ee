"""bbv bisect against the hand-written `git bisect run` script it replaces, side by side in one
run, over the same commits with the same check:

  script: in a checkout whose build directory was built at BAD (as a developer's is), `git
          bisect run` of: make the target's image in that directory (125 if it fails), then
          `bbv run -t T --image ... --exec ... --expect ...`; then `git bisect reset`
  script-cold: the same script in a build directory configured but never built (`make
          clean` after the untimed build), as bbv bisect's own is on a cold run: its first
          step is a full build, as bbv's first is
  bbv:    `bbv bisect -t T --good GOOD --bad BAD --exec ... --expect ...` on REPO, timed
          cold  (no tree, no build directory yet, empty ccache: a first bisect of the tree),
          warm  (tree and build directory kept from an earlier bisect; ccache and the kept
                 images emptied: every commit built, no cache hits),
          again (everything kept: the same range bisected again; kept images are booted)
  own:    not timed: `bbv build -t T` in REPO (at BAD, clean), the developer's own build the
          script's checkout has too; bbv bisect then boots its image for the bad end

    python benchmarks/bisect.py REPO -t vexpress --good G --bad B --exec CMD --expect RE

REPO is a barebox git clone of your own with the history to bisect; bbv bisect only reads it.
The script's side works in REPO.script, a `git clone --shared` of it made here. bbv's cache
and state go to a temporary directory. Nothing here is a test; the figures go in the docs."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BBV = [sys.executable, "-m", "barebox_virtio_cli"]


def run(argv: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and done.returncode:
        sys.exit(f"failed ({done.returncode}): {shlex.join(argv)}\n{done.stdout[-3000:]}\n"
                 f"{done.stderr[-3000:]}")
    return seconds


def script_side(repo: Path, args, env: dict[str, str], cold: bool = False
                ) -> tuple[float, str]:
    """git bisect run of a make + bbv run script in a clone whose build dir is at BAD (cold:
    configured, its objects removed)."""
    clone = repo.with_name(repo.name + ".script")
    if not clone.is_dir():
        run(["git", "clone", "-q", "--shared", str(repo), str(clone)], repo.parent, env)
    run(["git", "checkout", "-q", "--detach", args.bad], clone, env)
    out = clone / f"build-{args.target}"
    # The developer's build directory: configured and built by bbv at BAD (not timed).
    run([*BBV, "build", args.target, "--src", str(clone), "-O", str(out), "--no-ccache"],
        clone, env)
    record = json.loads((out / "bbv-build.json").read_text())
    image = Path(record["image"])
    check = " ".join(f"--exec {shlex.quote(c)}" for c in args.exec) + " " + \
        " ".join(f"--expect {shlex.quote(e)}" for e in args.expect)
    make = ["make", f"-j{os.cpu_count()}", f"ARCH={record['arch']}", f"O={out}",
            f"CROSS_COMPILE={record['toolchain']}"]
    if cold:
        run([*make, "clean"], clone, env)
    script = clone.parent / f"{clone.name}-check.sh"
    script.write_text(f"""#!/bin/sh
make -j{os.cpu_count()} ARCH={record['arch']} O={out} CROSS_COMPILE={record['toolchain']} \\
    images/{image.name} >/dev/null 2>&1 || exit 125
{shlex.join(BBV)} run -t {args.target} --image {image} {check} >/dev/null 2>&1
""")
    script.chmod(0o755)
    started = time.perf_counter()
    run(["git", "bisect", "start", args.bad, args.good], clone, env)
    done = subprocess.run(["git", "bisect", "run", str(script)], cwd=clone, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log = subprocess.run(["git", "bisect", "log"], cwd=clone, env=env, capture_output=True,
                         text=True).stdout
    run(["git", "bisect", "reset"], clone, env)
    first = next((line.split()[0] for line in done.stdout.splitlines()
                  if line.endswith("is the first bad commit")), "none")
    answers = [line.split()[2] for line in log.splitlines()
               if line.startswith("git bisect ") and line.split()[2] in ("good", "bad", "skip")]
    return seconds, f"{first[:12]} (log: {' '.join(answers)})"


def bbv_side(repo: Path, args, env: dict[str, str]) -> tuple[float, str, list[dict]]:
    argv = [*BBV, "bisect", "-t", args.target, "--src", str(repo), "--good", args.good,
            "--bad", args.bad, "--json"]
    for command in args.exec:
        argv += ["--exec", command]
    for pattern in args.expect:
        argv += ["--expect", pattern]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"bbv bisect failed ({done.returncode}):\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout)
    return seconds, data["first_bad"] or "none", data["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("-t", "--target", required=True)
    parser.add_argument("--good", required=True)
    parser.add_argument("--bad", required=True)
    parser.add_argument("--exec", action="append", default=[])
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--sides", default="script,cold,warm,again",
                        help="which runs, in order (script, script-cold, own, cold, warm, "
                             "again; default: script,cold,warm,again)")
    args = parser.parse_args()
    sides = args.sides.split(",")
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="bbv-bench-bisect-") as tmp:
        env = {**os.environ, "BBV_CACHE_DIR": f"{tmp}/cache", "BBV_STATE_DIR": f"{tmp}/state",
               "CCACHE_DIR": f"{tmp}/ccache"}
        script_s = None
        for label in sides:
            if label == "own":
                run([*BBV, "build", args.target, "--src", str(repo), "--no-ccache"], repo, env)
                print("own: REPO built at BAD by bbv build (not timed)", flush=True)
                continue
            if label in ("script", "script-cold"):
                script_s, script_first = script_side(repo, args, env, label == "script-cold")
                print(f"{label} (git bisect run: make + bbv run --exec): {script_s:.1f} s, "
                      f"first bad {script_first}; {_load()}", flush=True)
                continue
            if label in ("cold", "warm"):
                shutil.rmtree(f"{tmp}/ccache", ignore_errors=True)
                for images in Path(tmp, "cache", "bisect").glob("*/images"):
                    shutil.rmtree(images)
            seconds, first, steps = bbv_side(repo, args, env)
            build_s = sum(s["build_seconds"] for s in steps)
            built = sum(1 for s in steps if s["build_seconds"])
            checked = sum(s["check_seconds"] for s in steps)
            ratio = f"; ratio {seconds / script_s:.2f}" if script_s else ""
            print(f"bbv bisect {label}: {seconds:.1f} s (builds {build_s:.1f} s, checks "
                  f"{checked:.1f} s, {len(steps)} commits incl. both ends, {built} built), "
                  f"first bad {first[:12]}{ratio}; {_load()}", flush=True)
            for s in steps:
                print(f"  {s['commit'][:12]} {s['role']:9} {s['result']:4} build "
                      f"{s['build_seconds']:6.1f} s check {s['check_seconds']:5.1f} s "
                      f"{s['note'][:90]}", flush=True)


def _load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


if __name__ == "__main__":
    main()
