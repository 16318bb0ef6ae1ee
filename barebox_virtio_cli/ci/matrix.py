"""`bbv test --ci`'s plan: the tree's workflow read (ci/workflow.py), each chosen job's envs
(the yamls of its lgenv glob CI tests), the fragments CI merges for it, and for each env what
this host lacks to run it (QEMU binary and machine, firmware, cross compiler, OS image)."""

from __future__ import annotations

import glob
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.build.kbuild import check_tree
from barebox_virtio_cli.build.service import find_toolchain, toolchain_package
from barebox_virtio_cli.ci import envs as ci_envs
from barebox_virtio_cli.ci.envs import CiEnv, EnvFacts, Missing
from barebox_virtio_cli.ci.workflow import WORKFLOW, CiJob, Workflow, WorkflowError, read_workflow
from barebox_virtio_cli.ci.workflow import select as select_jobs
from barebox_virtio_cli.doctor.host import need_problem, packages
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.export.features import labgrid_loader
from barebox_virtio_cli.qemu.probe import probe
from barebox_virtio_cli.targets.catalog import load_catalog
from barebox_virtio_cli.util.hosttools import on_path

# Compilers for the ARCHes bbv has no target for (prefixes tried in order); sandbox is barebox
# built for the host: the host gcc under its triplet name (Debian's x86_64-linux-gnu-gcc).
OTHER_TOOLCHAINS = {"powerpc": ["powerpc-linux-gnu-", "powerpc-linux-"],
                    "openrisc": ["or1k-elf-", "or1k-linux-"],
                    "sandbox": [f"{platform.machine()}-linux-gnu-"]}


@dataclass
class JobPlan:
    job: CiJob
    envs: list[CiEnv]  # the yamls CI tests, in glob order
    not_tested: list[str]  # yamls of the glob CI skips (no QEMUDriver/ExternalConsoleDriver)
    fragments: list[str]
    missing: dict[str, list[Missing]]  # env name -> what the host lacks ([]: runnable)
    cross_compile: str | None = None  # a prefix bbv found itself (ARCHes without a target)

    def runnable(self) -> list[CiEnv]:
        return [e for e in self.envs if not self.missing[e.name]]


@dataclass
class CiPlan:
    src: Path
    workflow: Workflow
    jobs: list[JobPlan] = field(default_factory=list)


def load(src: Path, names: list[str], given: bool = False) -> CiPlan:
    """The tree's CI matrix for the jobs named (every job without names); one line for bad
    input: not a barebox tree, no workflow, an unreadable one, an unknown job."""
    check_tree(src, given=given)
    path = src / WORKFLOW
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not barebox's CI workflow file; remove it or "
                         "restore the file (git checkout -- .github)")
    if not path.is_file():
        raise UsageError(f"{src} has no {WORKFLOW} (barebox's labgrid CI, since v2023.06): "
                         "there is no CI matrix to run; test with 'bbv test TARGET'")
    try:
        workflow = read_workflow(path.read_text(errors="replace"))
    except WorkflowError as exc:
        raise BbvError(f"{path}: cannot read the CI matrix: {exc}") from None
    try:
        jobs = select_jobs(workflow.jobs, names)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    pkgs = packages()
    host = _Host(pkgs)
    plans = [_job_plan(src, workflow, job, host) for job in jobs]
    return CiPlan(src, workflow, plans)


class _Host:
    """What the plan asks of the host beyond QEMU, each thing probed once: the host tools of
    packages.toml's build_need, and the firmware QEMU loads without -bios (bbv's targets)."""

    def __init__(self, pkgs) -> None:
        self.pkgs = pkgs
        self.problems: dict[str, str | None] = {}
        catalog = load_catalog()
        self.default_firmware = {(t.qemu, t.machine.split(",", 1)[0]): t.qemu_firmware
                                 for t in (catalog.targets[n] for n in catalog.names())
                                 if t.qemu_firmware and not t.firmware}

    def build_tools(self, src: Path, job: CiJob, fragments: list[str]) -> list[Missing]:
        needs = self.pkgs.build_need
        options = _options(src, job, fragments)
        for need in needs:
            if need["name"] not in self.problems and (options is None
                                                      or need["config"] in options):
                self.problems[need["name"]] = need_problem(need)
        return ci_envs.build_missing(needs, options, self.problems)


def _options(src: Path, job: CiJob, fragments: list[str]) -> set[str] | None:
    """The CONFIG_ options the job's defconfig file and CI's fragments set (None for
    allyesconfig: every option); a generated defconfig (no file) counts by its fragments."""
    if job.defconfig == "allyesconfig":
        return None
    texts = [f for f in fragments if f.startswith("CONFIG_")]
    for path in [src / "arch" / job.arch / "configs" / job.defconfig,
                 *(src / f for f in fragments if not f.startswith("CONFIG_"))]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return ci_envs.config_options(texts)


def _job_plan(src: Path, workflow: Workflow, job: CiJob, host: _Host) -> JobPlan:
    envs, not_tested = [], []
    for path in expand(src, job.lgenv):
        env = read_env(src, path)
        env.default_firmware = ci_envs.default_firmware(env, host.default_firmware)
        (envs if env.tested_by_ci(workflow.drivers) else not_tested).append(env)
    features = {f for f in workflow.features() if any(e.uses(f) for e in envs + not_tested)}
    fragments = workflow.fragments(job, features)
    toolchain, prefix = _toolchain(src, job, host.pkgs)
    facts = _facts(src, job, envs, toolchain, host.build_tools(src, job, fragments), host.pkgs)
    return JobPlan(job, envs, [e.name for e in not_tested], fragments,
                   {e.name: ci_envs.missing(e, job, facts) for e in envs}, prefix)


def expand(src: Path, pattern: str) -> list[str]:
    """The workflow's `for i in ${{matrix.lgenv}}`: the glob in the tree, sorted; a pattern
    that matches nothing stays as it is (bash's nullglob off), and then names no file."""
    found = sorted(glob.glob(pattern, root_dir=src))
    return [p for p in found if (src / p).is_file()]


def read_env(src: Path, path: str) -> CiEnv:
    import yaml

    text = (src / path).read_text(errors="replace")
    try:
        data = yaml.load(text, Loader=labgrid_loader())  # noqa: S506 - a safe loader subclass
    except yaml.YAMLError:
        data = None
    return ci_envs.parse_env(path, text, data)


def _toolchain(src: Path, job: CiJob, pkgs) -> tuple[Missing | None, str | None]:
    """(why the job cannot be built here or None, a compiler prefix to pass to the build)."""
    if job.arch in OTHER_TOOLCHAINS:
        for prefix in OTHER_TOOLCHAINS[job.arch]:
            if on_path(f"{prefix}gcc"):
                return None, prefix
        package = pkgs.toolchains.get(job.arch, {}).get("debian", "")
        return Missing("cross compiler", f"no {OTHER_TOOLCHAINS[job.arch][0]}gcc on PATH",
                       package), None
    try:
        find_toolchain(src, job.arch, job.defconfig)
    except BbvError as exc:
        try:
            key = toolchain_package(src, job.arch, job.defconfig)
        except BbvError:
            key = job.arch
        return Missing("cross compiler", str(exc).split(";")[0],
                       pkgs.toolchains.get(key, {}).get("debian", "")), None
    return None, None


def _facts(src: Path, job: CiJob, envs: list[CiEnv], toolchain: Missing | None,
           build_tools: list[Missing], pkgs) -> EnvFacts:
    qemu, machines, datadirs = {}, {}, []
    for name in dict.fromkeys(e.qemu_bin for e in envs if e.qemu_bin):
        qemu[name] = on_path(name)
        machines[name] = None
        if qemu[name]:
            try:
                info = probe(qemu[name])
            except BbvError:
                continue
            machines[name] = list(info.machines)
            datadirs += [d for d in info.datadirs if d not in datadirs]
    firmware = {}
    for name in dict.fromkeys(f for e in envs for f in [*e.firmware, e.default_firmware] if f):
        firmware[name] = next((os.path.join(d, name) for d in datadirs
                               if os.path.isfile(os.path.join(d, name))), None)
    return EnvFacts(
        qemu=qemu, machines=machines, firmware=firmware,
        osimg=bool(job.osimg) and (src / job.osimg).is_file(), toolchain=toolchain,
        build_tools=build_tools,
        osimg_hint="CI downloads it with scripts/fetch-os.sh (network)"
        if (src / "scripts" / "fetch-os.sh").is_file() else "CI downloads it",
        qemu_packages={k: v.get("debian", "") for k, v in pkgs.programs.items()},
        firmware_packages={k: v.get("debian", "") for k, v in pkgs.firmware.items()})


def check_runnable(plan: CiPlan, named: bool) -> None:
    """A job named whose envs this host can run none of, or no runnable env at all: one line."""
    idle = [j for j in plan.jobs if not j.runnable()]
    if named and idle:
        job = idle[0]
        why = "; ".join(f"{e.name}: {', '.join(map(str, job.missing[e.name]))}"
                        for e in job.envs) or f"its lgenv {job.job.lgenv} names no yaml CI tests"
        raise BbvError(f"CI job {job.job.defconfig}: this host can run none of its envs ({why}); "
                       "'bbv test --ci --list' lists what each env needs")
    if len(idle) == len(plan.jobs):
        raise BbvError("this host can run none of the CI matrix's envs; 'bbv test --ci --list' "
                       "lists what each env needs")


def to_json(plan: CiPlan) -> list[dict]:
    """`bbv test --ci --list --json`: per job, its envs and what each lacks on this host."""
    return [{"job": j.job.defconfig, "arch": j.job.arch, "lgenv": j.job.lgenv,
             "lgargs": j.job.lgargs, "osimg": j.job.osimg, "fragments": j.fragments,
             "not_tested": j.not_tested,
             "envs": [{"env": e.name, "yaml": e.path, "runnable": not j.missing[e.name],
                       "missing": [{"item": m.item, "detail": m.detail, "debian": m.package}
                                   for m in j.missing[e.name]]} for e in j.envs]}
            for j in plan.jobs]
