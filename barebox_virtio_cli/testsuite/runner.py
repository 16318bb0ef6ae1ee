"""`bbv test` run: per target, the build service into its build directory, the export service
writing a labgrid environment there, then barebox's own test/py under pytest (its conftest.py
and strategy) as a child in its own process group, so that a signal stops pytest and the QEMU
labgrid started. Builds run one at a time; with jobs > 1 the test runs of different targets
overlap."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build.record import default_build_dir, read_record
from barebox_virtio_cli.build.service import BuildRequest, build
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.export.service import labgrid_file
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.testsuite import results as res
from barebox_virtio_cli.testsuite.full import for_arch, full_env
from barebox_virtio_cli.testsuite.groups import ProcessGroups
from barebox_virtio_cli.testsuite.request import SUITE, SuiteRequest
from barebox_virtio_cli.util import status
from barebox_virtio_cli.util.atomic import write_text


@dataclass(frozen=True)
class Files:
    """Where one test run writes: its log, the plugin's events, labgrid's console log and
    (if asked) pytest's JUnit report."""

    log: Path
    events: Path
    console: Path
    junit: Path | None = None


class SuiteRun:
    def __init__(self, request: SuiteRequest, lines: status.Rows) -> None:
        self.request = request
        self.lines = lines
        self.groups = ProcessGroups()
        self.export_notes: dict[str, str] = {}

    def build(self, target: Target, result: res.TargetResult) -> Path | None:
        """Build (or with --no-build find) the target; its image, or None with result.error."""
        # --full's builds keep a directory of their own: the target's usual build (what
        # `bbv run` boots) never takes --full's config, and both stay incremental
        suffix = "-full" if self.request.full is not None else ""
        out = result.build_dir = default_build_dir(self.request.src, target.name + suffix)
        if self.request.build:
            self.lines.set(target.name, "building")
            started = time.monotonic()
            # --all-images: barebox's suite uses more than the image QEMU boots (FIT, modules)
            order = BuildRequest(target.name, src=self.request.src, build_dir=out,
                                 kconfig_add=tuple(self._kconfig(target)),
                                 jobs=self.request.make_jobs, all_images=True)
            try:
                with status.collected([]):  # the target's line says it; the log has the rest
                    build(order)
            except BbvError as exc:
                result.log = out / "bbv-build.log"
                result.error = f"build failed: {exc}"
                return None
            result.build_seconds = time.monotonic() - started
        record = read_record(out)
        image = record.image if record else None
        if not image or not image.is_file():
            result.error = f"no build of {target.name} in {out}; run without --no-build"
            return None
        missing = [f for f in self._kconfig(target) if f not in record.kconfig]
        if missing:
            result.error = (f"the build in {out} lacks {', '.join(missing)}; run without "
                            "--no-build")
            return None
        return image

    def _kconfig(self, target: Target) -> list[str]:
        """The fragments for this target's build: --full's without what does not build for
        its ARCH (make_request said which)."""
        if self.request.full is None:
            return self.request.kconfig
        return for_arch(self.request.full, self.request.kconfig, target.arch)[0]

    def export(self, target: Target, image: Path, result: res.TargetResult) -> Path | None:
        """The labgrid environment of this build with the device options, as `bbv export
        labgrid` writes it; its status lines head the test log."""
        assert result.build_dir is not None
        env_file = result.build_dir / res.EXPORT_NAME
        said: list[str] = []
        order = self.request.devices.replace(target=target.name, image=str(image))
        features: tuple[str, ...] = ()
        if self.request.full is not None:
            extra = full_env(self.request.full, target.full_extras, target.name)
            features = tuple(extra.features)
            order = order.replace(env=(*order.env, *extra.env),
                                  machine=order.machine or target.full_machine or None)
            if "framebuffer" in extra.devices:
                order = order.replace(qemu_arg=(*order.qemu_arg, *target.graphic))
        try:
            with status.collected(said):
                _, text = labgrid_file(order, self.request.src, no_strategy=False,
                                       more_features=features)
        except UsageError:
            raise
        except BbvError as exc:
            result.error = f"bbv export labgrid failed: {exc}"
            return None
        write_text(env_file, text)
        self.export_notes[target.name] = "".join(said)
        return env_file

    def test(self, target: Target, env_file: Path, result: res.TargetResult) -> None:
        assert result.build_dir is not None
        out = result.build_dir
        junit = (self.request.junit_dir / f"{target.name}.xml"
                 if self.request.junit_dir else None)
        self.pytest(target.name, env_file, result, Files(out / res.LOG_NAME,
                    out / res.EVENTS_NAME, out / res.CONSOLE_DIR, junit),
                    self.request.pytest_args, self.export_notes.get(target.name, ""))

    def pytest(self, name: str, env_file: Path, result: res.TargetResult, files: Files,
               extra: list[str], header: str = "") -> None:
        """barebox's test/py on one labgrid environment, LG_BUILDDIR the result's build."""
        assert result.build_dir is not None
        files.events.write_text("")
        result.log = files.log
        argv = res.pytest_argv(sys.executable, env_file, SUITE, files.junit, self.request.keyword,
                               files.console, extra)
        env = {**os.environ, "LG_BUILDDIR": str(result.build_dir),
               "BBV_TEST_EVENTS": str(files.events)}
        env.pop("LG_ENV", None)
        self.lines.set(name, "booting")
        started = time.monotonic()
        with open(result.log, "wb") as log:
            log.write(header.encode())
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            proc = self.groups.start(argv, cwd=self.request.src, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if proc is None:  # bbv is being stopped
                return
            try:
                while proc.poll() is None:
                    self._show(name, files.events)
                    time.sleep(0.2)
            finally:
                self.groups.finish(proc)
        result.duration = time.monotonic() - started
        result.collected, result.tests, _ = res.read_events(files.events.read_text())
        if self.groups.stopping:
            return  # stopped by a signal: no verdict on a cut-off run
        if proc.returncode == 5:
            result.error = res.no_tests_ran(self.request.keyword, self.request.pytest_args)
        elif proc.returncode not in (0, 1) or (proc.returncode == 1 and not result.tests):
            # 1 without a single result: pytest failed before any test (a plugin that does
            # not import, a broken conftest.py), not a test that failed
            result.error = res.pytest_failure(proc.returncode, _tail(result.log))
        self.lines.set(name, _verdict(result))

    def _show(self, name: str, events: Path) -> None:
        try:
            collected, done, running = res.read_events(events.read_text())
        except OSError:
            return
        self.lines.set(name, res.progress(collected, len(done), running), say_it=False)

    def run(self) -> list[res.TargetResult]:
        results = [res.TargetResult(t.name) for t in self.request.targets]
        pool = ThreadPoolExecutor(max_workers=max(1, self.request.jobs))
        pending: list[Future] = []
        try:
            for target, result in zip(self.request.targets, results, strict=True):
                image = self.build(target, result)
                env_file = self.export(target, image, result) if image else None
                if env_file is None:
                    self.lines.set(target.name, f"[red]{result.error}[/]")
                    continue
                future = pool.submit(self.test, target, env_file, result)
                pending.append(future)
                if self.request.jobs <= 1:
                    future.result()
            for future in pending:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results


def _verdict(result: res.TargetResult) -> str:
    if result.error:
        return f"[red]{result.error}[/]"
    errors = result.count("error")
    text = f"{result.count('passed')} passed, {result.count('failed')} failed, " \
           f"{result.count('skipped')} skipped, {result.count('xfailed')} xfailed" + \
           (f", {errors} errors" if errors else "")
    return f"[green]{text}[/]" if result.ok else f"[red]{text}[/]"


def _tail(path: Path, size: int = 20000) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size))
        return fh.read().decode(errors="replace")


def run(request: SuiteRequest, live: bool) -> list[res.TargetResult]:
    """Run everything. Stopped by SIGINT, SIGTERM or SIGHUP, it stops every child (the build's
    make, pytest and its QEMU) and raises Signalled."""
    lines = status.Rows([t.name for t in request.targets], live)
    suite = SuiteRun(request, lines)
    try:
        with suite.groups.stopped_by_signals():
            return suite.run()
    finally:
        lines.close()
