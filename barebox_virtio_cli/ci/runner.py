"""`bbv test --ci` run: per job, the build service builds the defconfig once with CI's
fragments (out of tree, ccache, incremental) in DIR/build-ARCH-DEFCONFIG, then barebox's own
test/py runs under pytest with barebox's own yaml for every env of the job this host can run,
with the job's lgargs, as the workflow's labgrid-pytest step does. Builds run one at a time;
with jobs > 1 env runs overlap each other and the next job's build. Envs of one build that
use testfs (LG_BUILDDIR/testfs, written by the suite's fixtures) run one at a time."""

from __future__ import annotations

import shlex
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.build.record import read_record
from barebox_virtio_cli.build.service import BuildFailed, BuildRequest
from barebox_virtio_cli.build.service import build as run_build
from barebox_virtio_cli.ci.envs import CiEnv
from barebox_virtio_cli.ci.matrix import CiPlan, JobPlan, check_runnable
from barebox_virtio_cli.ci.results import EnvResult, build_failure
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.testsuite import results as res
from barebox_virtio_cli.testsuite.request import (
    SuiteRequest,
    check_labgrid,
    full_kconfig,
    host_requirements,
    load_full,
    output_dir,
)
from barebox_virtio_cli.testsuite.request import check_tree as check_suite
from barebox_virtio_cli.testsuite.runner import Files, SuiteRun
from barebox_virtio_cli.util import status


@dataclass
class CiOptions:
    build_base: Path | None = None  # build dirs go here [default: the tree]
    jobs: int = 1
    make_jobs: int | None = None
    junit_dir: Path | None = None
    keyword: str | None = None
    pytest_args: list[str] = field(default_factory=list)
    build: bool = True
    kconfig: list[str] = field(default_factory=list)  # merged after CI's fragments (--full)


def build_dir(plan: CiPlan, job: JobPlan, options: CiOptions) -> Path:
    """CI's KBUILD_OUTPUT name, build-ARCH-DEFCONFIG, in the tree or under -O DIR; bbv's
    builds get `ci-` in front in the tree so that they never mix with a MAKEALL build."""
    full = "-full" if options.kconfig else ""  # CI's own build stays as CI makes it
    if options.build_base is not None:
        return options.build_base / f"{job.job.build_name}{full}"
    return plan.src / f"build-ci-{job.job.arch}-{job.job.defconfig}{full}"


class CiRun:
    def __init__(self, plan: CiPlan, options: CiOptions, lines: status.Rows) -> None:
        self.plan, self.options = plan, options
        self.suite = SuiteRun(SuiteRequest(src=plan.src, targets=[], keyword=options.keyword,
                                           jobs=options.jobs, pytest_args=options.pytest_args),
                              lines)
        self.lines = lines

    @property
    def groups(self):
        return self.suite.groups

    def build(self, job: JobPlan, names: list[str]) -> tuple[Path, float | None, str, Path | None]:
        """(build dir, seconds or None, error, log) of the job's one build."""
        out = build_dir(self.plan, job, self.options)
        if not self.options.build:
            record = read_record(out)
            if record is None or not record.complete:
                return out, None, f"no build of {job.job.defconfig} in {out}; run without " \
                                  "--no-build", None
            missing = [f for f in [*job.fragments, *self.options.kconfig]
                       if f not in record.kconfig]
            if missing:
                return out, None, f"the build in {out} lacks {', '.join(missing)}; run " \
                                  "without --no-build", None
            return out, None, "", None
        for name in names:
            self.lines.set(name, f"building {job.job.defconfig}", say_it=name == names[0])
        order = BuildRequest(arch=job.job.arch, defconfig=job.job.defconfig, src=self.plan.src,
                             build_dir=out, kconfig_add=(*job.fragments, *self.options.kconfig),
                             exact=True,
                             all_images=True, index=False, jobs=self.options.make_jobs,
                             cross_compile=job.cross_compile,
                             cross_compile_source="bbv test --ci" if job.cross_compile
                             is not None else None)
        started = time.monotonic()
        try:
            with status.collected([]):  # the env lines say it; the build log has the rest
                run_build(order)
        except BuildFailed as exc:
            return out, None, build_failure(exc.errors, str(exc), str(self.plan.src)), exc.log
        except BbvError as exc:
            return out, None, f"build failed: {exc}", out / "bbv-build.log"
        return out, time.monotonic() - started, "", None

    def test(self, job: JobPlan, env: CiEnv, result: res.TargetResult,
             testfs: threading.Lock | None) -> None:
        out = result.build_dir
        assert out is not None
        junit = self.options.junit_dir / f"{env.name}.tests.xml" if self.options.junit_dir \
            else None
        files = Files(out / f"bbv-ci-{env.name}.log", out / f"bbv-ci-{env.name}.events.jsonl",
                      out / "log" / env.name, junit)
        extra = [*self.plan.workflow.pytest_args, *shlex.split(job.job.lgargs),
                 *self.options.pytest_args]
        if testfs is None:
            self.suite.pytest(env.name, self.plan.src / env.path, result, files, extra)
            return
        self.lines.set(env.name, "waiting for testfs", say_it=False)
        with testfs:
            self.suite.pytest(env.name, self.plan.src / env.path, result, files, extra)

    def run(self) -> list[EnvResult]:
        results: list[EnvResult] = []
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.jobs))
        pending: list[Future] = []
        try:
            for job in self.plan.jobs:
                runnable = job.runnable()
                for env in job.envs:
                    if env not in runnable:
                        reason = "; ".join(map(str, job.missing[env.name]))
                        results.append(EnvResult(job.job.defconfig, env.name, None, reason))
                        self.lines.set(env.name, f"[yellow]not run: {reason}[/]")
                if not runnable:
                    continue
                out, seconds, error, log = self.build(job, [e.name for e in runnable])
                testfs = threading.Lock()
                for env in runnable:
                    run = res.TargetResult(env.name, build_dir=out, build_seconds=seconds,
                                           error=error, log=log)
                    results.append(EnvResult(job.job.defconfig, env.name, run))
                    if error:
                        self.lines.set(env.name, f"[red]{error}[/]", say_it=env == runnable[0])
                        continue
                    future = pool.submit(self.test, job, env, run,
                                         testfs if env.uses("testfs") else None)
                    pending.append(future)
                    if self.options.jobs <= 1:
                        future.result()
            for future in pending:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        order = {(j.job.defconfig, e.name): i for i, (j, e) in
                 enumerate((j, e) for j in self.plan.jobs for e in j.envs)}
        return sorted(results, key=lambda r: order.get((r.job, r.env), 0))


def run(plan: CiPlan, options: CiOptions, live: bool) -> list[EnvResult]:
    """Run every chosen job. Stopped by SIGINT, SIGTERM or SIGHUP, it stops every child (the
    build's make, pytest and its QEMU) and raises Signalled."""
    lines = status.Rows([e.name for j in plan.jobs for e in j.envs], live)
    ci = CiRun(plan, options, lines)
    try:
        with ci.groups.stopped_by_signals():
            return ci.run()
    finally:
        lines.close()


def run_jobs(plan: CiPlan, options: CiOptions, named: bool, full: bool,
             live: bool) -> list[EnvResult]:
    """`bbv test --ci`: the tree, labgrid and the host checked (its unmet suite requirements
    warned about), then every chosen job run (see run)."""
    check_suite(plan.src)
    if options.junit_dir is not None:
        options.junit_dir = output_dir(options.junit_dir, "--junit-dir")
    check_labgrid()
    envs = [env for job in plan.jobs for env in job.runnable()]
    for missing in host_requirements(plan.src, lambda word: any(e.uses(word) for e in envs)):
        status.say(f"warning: {missing.warning()}")
    check_runnable(plan, named=named)
    for note in plan.workflow.notes:
        status.say(note)
    if full:
        options.kconfig = full_kconfig(plan.src, load_full())
    return run(plan, options, live)
