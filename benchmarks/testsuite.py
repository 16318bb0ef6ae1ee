"""`bbv test` beside barebox's own setup on the same builds: for each target, barebox's
`pytest --lg-env test/<arch>/<file>.yaml test/py` (the file for the target's defconfig, QEMU
machine and image, run as MAKEALL runs it, with LG_BUILDDIR at bbv's build directory), then
`bbv test TARGET --no-build`, both with the same disk and RNG. Prints passed, failed, skipped,
xfailed and wall time for each, and the tests whose outcome differs.

    python benchmarks/testsuite.py --src ~/barebox vexpress armv8 malta riscv64 [--no-blk]

The builds must exist (`bbv test T` or `bbv build T` first). Writes only into the build
directories (labgrid files, logs, testfs/) and a temporary directory."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from barebox_virtio_cli.build.record import read_record
from barebox_virtio_cli.export import features
from barebox_virtio_cli.targets.catalog import load_catalog


def barebox_yaml(src: Path, name: str) -> Path:
    target = load_catalog().get(name)
    record = read_record(src / f"build-{name}") or {}
    envs = features.matching(features.tree_envs(src), record.get("defconfig", ""), target.qemu,
                             target.machine)
    same_image = [e for e in envs if e.image == target.image]
    if not same_image:
        sys.exit(f"no test/*/*.yaml in {src} for {name} ({record.get('defconfig')})")
    return same_image[0].path


def junit_outcomes(path: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kinds = [child.tag for child in case]
        skipped = next((c for c in case if c.tag == "skipped"), None)
        if "failure" in kinds or "error" in kinds:
            outcomes[name] = "failed"
        elif skipped is not None:
            xfail = (skipped.get("type") or "") == "pytest.xfail"
            outcomes[name] = "xfailed" if xfail else "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes


def barebox_run(src: Path, name: str, disk: Path, junit: Path) -> tuple[dict, float]:
    yaml = barebox_yaml(src, name)
    env = {**os.environ, "LG_BUILDDIR": str(src / f"build-{name}")}
    argv = [sys.executable, "-m", "pytest", "--lg-env", str(yaml), f"--junitxml={junit}",
            "--rng", *([f"--blk={disk}"] if disk else []), "test/py"]
    started = time.monotonic()
    subprocess.run(argv, cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   check=False)
    return junit_outcomes(junit), time.monotonic() - started


def bbv_run(src: Path, name: str, disk: Path) -> tuple[dict, float]:
    argv = [sys.executable, "-m", "barebox_virtio_cli", "test", name, "--src", str(src),
            "--no-build", "--json", "--rng", *(["--blk", str(disk)] if disk else [])]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    [result] = json.loads(done.stdout)
    return {t["name"]: t["outcome"] for t in result["tests"]}, wall


def counts(outcomes: dict[str, str]) -> str:
    return " ".join(f"{sum(o == k for o in outcomes.values())} {k}"
                    for k in ("passed", "failed", "skipped", "xfailed"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, default=Path.cwd())
    parser.add_argument("--no-blk", action="store_true")
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    src = args.src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.targets:
            disk = None
            if not args.no_blk:
                disk = Path(tmp) / f"{name}.img"
                disk.write_bytes(b"\0" * (8 << 20))
            theirs, their_wall = barebox_run(src, name, disk, Path(tmp) / f"{name}.xml")
            ours, our_wall = bbv_run(src, name, disk)
            print(f"{name}: barebox {barebox_yaml(src, name).relative_to(src)}: "
                  f"{counts(theirs)}, {their_wall:.1f} s")
            print(f"{name}: bbv test: {counts(ours)}, {our_wall:.1f} s")
            for test in sorted(set(theirs) | set(ours)):
                if theirs.get(test) != ours.get(test):
                    print(f"    {test}: barebox {theirs.get(test)}, bbv {ours.get(test)}")


if __name__ == "__main__":
    main()
