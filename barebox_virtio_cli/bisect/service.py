"""`bbv bisect` as a service: the first commit that breaks a check, found with `git bisect` in a
repository of bbv's own sharing the user's objects (bisect/workspace.py), each commit built in
process by build/service.py (one persistent build directory, incremental, ccache, the target's
image only) and checked by a scripted boot (run/service.py), barebox's suite (bbv test) or any
command (git's convention). The decisions live in bisect/steps.py; commands/bisect.py parses
options and renders."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.bisect import steps as st
from barebox_virtio_cli.bisect import workspace as ws
from barebox_virtio_cli.bisect.workspace import Workspace, describe, subject
from barebox_virtio_cli.build.kbuild import check_tree
from barebox_virtio_cli.build.service import BuildFailed, BuildRequest, build
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.run.service import prepare, scripted
from barebox_virtio_cli.session.options import script_from
from barebox_virtio_cli.session.report import PASSED, split_qemu_lines
from barebox_virtio_cli.targets.catalog import load_catalog
from barebox_virtio_cli.testsuite import request as suite
from barebox_virtio_cli.testsuite import results as res
from barebox_virtio_cli.testsuite import runner
from barebox_virtio_cli.testsuite.request import SuiteRequest
from barebox_virtio_cli.util import status
from barebox_virtio_cli.util.atomic import write_text
from barebox_virtio_cli.util.processes import start_child, stop_group
from barebox_virtio_cli.util.status import say

# What a check command is told (cwd stays the user's, where the command was typed).
ENV_IMAGE, ENV_BUILD_DIR, ENV_SRC = "BBV_BISECT_IMAGE", "BBV_BISECT_BUILD_DIR", "BBV_BISECT_SRC"
ENV_COMMIT, ENV_TARGET = "BBV_BISECT_COMMIT", "BBV_BISECT_TARGET"


@dataclass
class BisectRequest:
    target: str
    good: str
    bad: str
    src: Path | None = None
    boot: RunRequest | None = None  # --exec/--expect and the device options of bbv run
    test: str | None = None  # --test EXPR: barebox's suite, pytest -k
    command: list[str] = field(default_factory=list)  # -- CMD ARGS...
    repeat: int = 1
    boot_fail_skip: bool = False
    no_ccache: bool = False
    jobs: int | None = None


class _Checker:
    """One kind of check, run on a built image: (result, note)."""

    def __init__(self, request: BisectRequest, target) -> None:
        self.request, self.target = request, target
        self.doing = ("running " + request.command[0] if request.command else
                      "testing (bbv test)" if request.test is not None else "booting")

    def __call__(self, image: Path, build_dir: Path, tree: Path, sha: str) -> tuple[str, str]:
        if self.request.command:
            return self._command(image, build_dir, tree, sha)
        if self.request.test is not None:
            return self._test(build_dir, tree)
        return self._boot(image)

    def _test(self, build_dir: Path, tree: Path) -> tuple[str, str]:
        """barebox's suite through bbv test's runner, on what was built: the runner tests
        SRC/build-TARGET, so that name in the tree points at the build directory."""
        link = tree / f"build-{self.target.name}"
        if not link.is_symlink():
            link.symlink_to(build_dir, target_is_directory=True)
        request = SuiteRequest(src=tree, targets=[self.target], build=False,
                               keyword=self.request.test,
                               devices=self.request.boot or RunRequest())
        [result] = runner.run(request, live=False)  # Signalled: its children are stopped
        if result.error == res.no_tests_ran(self.request.test, []):
            return st.SKIP, f"-k {self.request.test!r} selected no test of this commit's suite"
        if result.error:
            return (st.SKIP if self.request.boot_fail_skip else st.BAD), result.error
        if result.failed_or_error:
            names = [t.name.rsplit("::", 1)[-1] for t in result.tests
                     if t.outcome in ("failed", "error")]
            return st.BAD, f"{result.failed_or_error} failed: {', '.join(names)}"
        if not result.count("passed"):
            return st.SKIP, f"no test passed (-k {self.request.test!r}: all were skipped)"
        return st.GOOD, ""

    def _boot(self, image: Path) -> tuple[str, str]:
        assert self.request.boot is not None
        result = scripted(self.request.boot.replace(image=str(image)))
        if result.boot.status != PASSED:
            why = f"no barebox prompt: {result.error or result.boot.status}"
            qemu_lines, _ = split_qemu_lines(result.last_lines)
            if qemu_lines:  # as bbv run says it: QEMU's own reason
                why += f"; {st.QEMU_SAID} {qemu_lines[0]}"
            return (st.SKIP if self.request.boot_fail_skip else st.BAD), why
        if result.ok:
            return st.GOOD, ""
        return st.BAD, _why_failed(result)

    def _command(self, image: Path, build_dir: Path, tree: Path, sha: str) -> tuple[str, str]:
        env = {**os.environ, ENV_IMAGE: str(image), ENV_BUILD_DIR: str(build_dir),
               ENV_SRC: str(tree), ENV_COMMIT: sha, ENV_TARGET: self.target.name}
        argv = self.request.command
        try:  # a group of its own: whatever it starts (a QEMU) is stopped with it
            proc = start_child(argv, env=env, start_new_session=True)
        except OSError as exc:
            raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            status = proc.wait()
        finally:
            stop_group(proc)
        result = st.command_result(status)
        return result, "" if status == 0 else f"{argv[0]} exited {status}"


def _why_failed(result) -> str:
    if result.error:
        return result.error
    for step in result.commands:
        if step.status != PASSED:
            return f"'{step.command}' failed ({step.message or step.status})"
    missed = [e.pattern for e in result.expectations if not e.ok]
    return f"/{missed[0]}/ not found" if missed else "the check failed"


def check_request(request: BisectRequest):
    """Everything that can be wrong with the input, before anything is built: (request with
    the boot on the target, repo, good sha, bad sha, target). Usage errors are one line, exit
    status 2."""
    kinds = [bool(request.boot and (request.boot.exec or request.boot.expect)),
             request.test is not None, bool(request.command)]
    if sum(kinds) != 1:
        raise UsageError("give one check: --exec CMD/--expect REGEX (a scripted boot), --test "
                         "EXPR (barebox's suite) or -- CMD ARGS (0 good, 125 skip, 1-127 bad)")
    if request.repeat < 1:
        raise UsageError("--repeat wants 1 or more")
    target = load_catalog().get(request.target)
    src = (request.src or Path.cwd()).resolve()
    repo = ws.toplevel(src)
    good = ws.resolve(repo, "--good", request.good)
    bad = ws.resolve(repo, "--bad", request.bad)
    if good == bad:
        raise UsageError(f"--good and --bad are the same commit ({good[:12]}); give a good "
                         "commit before the bad one")
    if not ws.is_ancestor(repo, good, bad):
        raise UsageError(f"--good {request.good} ({good[:12]}) is not an ancestor of --bad "
                         f"{request.bad} ({bad[:12]}): git bisect looks for the change between "
                         "them; swapped? give the older, good commit as --good")
    if request.command and shutil.which(request.command[0]) is None:
        raise UsageError(f"-- {request.command[0]}: no such program (or not executable); give "
                         "the command that checks a commit")
    check_tree(repo, given=request.src is not None)
    boot = (request.boot or RunRequest()).replace(target=target.name, arch=None)
    if request.test is not None:
        suite.check_keyword(request.test)
        suite.check_devices(boot)
        suite.check_tree(repo)
        suite.check_labgrid()
    if kinds[0]:
        _check_boot(boot)
    return dataclasses.replace(request, boot=boot), repo, good, bad, target


def _check_boot(boot: RunRequest) -> None:
    """The scripted-boot and device options checked as bbv run checks them (no image yet)."""
    script_from(boot)
    prepare(boot, image_optional=True)


class _Bisection:
    def __init__(self, request: BisectRequest, repo: Path, target, space: Workspace,
                 on_step: Callable[[st.CommitStep], None]) -> None:
        self.request, self.repo, self.target, self.space = request, repo, target, space
        self.check = _Checker(request, target)
        self.on_step = on_step
        self.count = 0
        # A boot check uses the image alone: an earlier image of the commit will do, and its
        # build needs no debug info. A command or the suite reads the build directory, which
        # must then be a whole build of the commit.
        self.image_only = not request.command and request.test is None

    def step(self, sha: str, role: str = "step") -> st.CommitStep:
        """Build the tree's HEAD (sha) and check it, --repeat times unless one fails."""
        self.count += 1
        step = st.CommitStep(sha, subject(self.repo, sha), role=role)
        say(f"[{self.count}] {sha[:12]} {step.subject}: building")
        image, note = self.build(step)
        if image is None:
            step.result, step.note = st.SKIP, note
        else:
            results = []
            started = time.monotonic()
            for run in range(self.request.repeat):
                again = f" (run {run + 1}/{self.request.repeat})" if self.request.repeat > 1 \
                    else ""
                say(f"[{self.count}] {sha[:12]}: {self.check.doing}{again}")
                result, note = self.check(image, self.space.build_dir, self.space.tree, sha)
                results.append(result)
                if note and not step.note:
                    step.note = note
                if result != st.GOOD:
                    break
            step.result = st.combined(results)
            step.check_seconds = time.monotonic() - started
        say(f"[{self.count}] {st.step_line(step)}")
        self.on_step(step)
        return step

    def build(self, step: st.CommitStep) -> tuple[Path | None, str]:
        """The target's image built from the tree (or kept from an earlier build of the same
        commit and configuration), or None and the first error line."""
        kept = self.space.kept_image(step.commit) if self.image_only else None
        if kept is not None:
            say(f"[{self.count}] {step.commit[:12]}: built before, its image kept: not built")
            return kept, ""
        request = BuildRequest(self.target.name, src=self.space.tree,
                               build_dir=self.space.build_dir, all_images=False,
                               no_ccache=self.request.no_ccache, jobs=self.request.jobs,
                               index=False, debug_info=not self.image_only)
        started = time.monotonic()
        self.space.building(step.commit)
        try:
            with status.collected([]):  # the step's lines say it; the build log has the rest
                result = build(request)
        except BuildFailed as exc:
            step.build_seconds = time.monotonic() - started
            return None, f"does not build: {_first_error(exc, self.space.tree)}"
        step.build_seconds = time.monotonic() - started
        self.space.built(step.commit)
        if result.image is None or not result.image.is_file():
            return None, f"the build made no {self.target.image}"
        if self.image_only:
            self.space.keep_image(step.commit, result.image)
        return result.image, ""


def _first_error(exc, tree: Path) -> str:
    """make's first error line, its file named as in the repository (not in bbv's tree)."""
    line = exc.errors[0].strip() if exc.errors else str(exc)
    return line.replace(f"{tree}/", "")[:200]


def bisect(request: BisectRequest,
           on_step: Callable[[st.CommitStep], None] = lambda step: None) -> st.BisectOutcome:
    """The first bad commit, or why there is none. The user's checkout is only read."""
    request, repo, good, bad, target = check_request(request)
    outcome = st.BisectOutcome(target.name, good, bad)
    space = Workspace.for_repo(repo, target.name)
    with space.locked(), space.checked_out(bad) as tree:
        space.restore_times()
        how = "made" if space.created else "kept"
        if (space.build_dir / ".config").is_file():
            say(f"tree {tree} ({how}) at {bad[:12]}; {space.build_dir} is kept between runs "
                "(incremental build)")
        else:
            say(f"tree {tree} ({how}) at {bad[:12]}; building in {space.build_dir}")
        run = _Bisection(request, repo, target, space, on_step)
        adopted = space.adopt(bad) if run.image_only else None
        if adopted and space.kept_image(bad):  # and of the build directory's configuration
            say(f"your build in {adopted} is of {bad[:12]} (a clean checkout, its image newer "
                "than every file): its image is booted for that commit")
        for sha, expected in ((bad, st.BAD), (good, st.GOOD)):
            if space.head() != sha:
                space.checkout(sha)
            step = run.step(sha, f"{expected} end")
            outcome.steps.append(step)
            problem = st.ends_problem(step, expected)
            if problem:
                refused = st.qemu_refused(outcome.steps)
                if refused:
                    raise st.Stop(refused)
                outcome.why = problem
                return outcome
        answer = space.bisect("start", bad, good)
        while True:
            state, shas = st.parse_answer(answer)
            if state == "found":
                outcome.first_bad = describe(repo, shas[0])
                break
            if state == "skipped":
                outcome.candidates = shas
                outcome.why = (f"only skipped commits are left; the first bad commit is one of "
                               f"{', '.join(s[:12] for s in shas)}")
                break
            _say_progress(answer)
            step = run.step(space.head())
            outcome.steps.append(step)
            answer = space.bisect(step.result)
        outcome.log = _save_log(space)
    return outcome


def _say_progress(answer: str) -> None:
    for line in answer.splitlines():
        if line.startswith("Bisecting:"):
            say(line.removeprefix("Bisecting: "))


def _save_log(space: Workspace) -> str:
    write_text(space.log, space.bisect_log())
    return str(space.log)

