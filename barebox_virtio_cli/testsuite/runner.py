"""Side effects of `bbv test`: per target, `bbv build` into its build directory, `bbv export
labgrid` into it, then barebox's own test/py under pytest (its conftest.py and strategy), each
child in its own process group so that a signal stops pytest and the QEMU labgrid started.
Builds run one at a time; with jobs > 1 the test runs of different targets overlap."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.testsuite import results as res
from barebox_virtio_cli.util.processes import start_child

SUITE = "test/py"
_MARKUP = re.compile(r"\[/?[a-z ]*\]")


@dataclass
class Request:
    src: Path
    targets: list[Target]
    build: bool = True
    kconfig: list[str] = field(default_factory=list)  # fragments merged into the builds
    keyword: str | None = None
    jobs: int = 1
    make_jobs: int | None = None
    junit_dir: Path | None = None
    devices: list[str] = field(default_factory=list)
    pytest_args: list[str] = field(default_factory=list)


def make_request(src: Path, names: tuple[str, ...], all_targets: bool, **options) -> Request:
    """Check the tree, labgrid and the targets up front; one line for what is wrong."""
    from barebox_virtio_cli.targets.catalog import load_catalog

    if all_targets and names:
        raise UsageError("give target names or --all, not both")
    if not all_targets and not names:
        raise UsageError("say which targets to test (see 'bbv targets'), or --all")
    check_keyword(options.get("keyword"))
    check_devices(options.get("devices", []))
    catalog = load_catalog()
    targets = [catalog.get(n) for n in dict.fromkeys(names)]
    check_tree(src)
    check_labgrid()
    if all_targets:
        targets = _testable(list(catalog.targets.values()), src)
    for target in [] if all_targets else targets:
        problem = boot_problem(target)
        if problem:
            raise BbvError(f"this host cannot boot target '{target.name}': {problem}; "
                           f"'bbv doctor {target.name}' lists what to install")
    if options.get("junit_dir") is not None:
        options["junit_dir"] = _output_dir(options["junit_dir"], "--junit-dir")
    return Request(src=src, targets=targets, **options)


def _testable(targets: list[Target], src: Path) -> list[Target]:
    """--all: the targets the tree has a defconfig for and this host can boot; others named."""
    from barebox_virtio_cli.build.kbuild import defconfigs
    from barebox_virtio_cli.util.status import say

    known = defconfigs(src)
    chosen = []
    for target in targets:
        problem = boot_problem(target)
        if not any(d in known for d in target.defconfigs):
            say(f"{target.name}: skipped, this tree has none of {', '.join(target.defconfigs)}")
        elif problem:
            say(f"{target.name}: skipped, this host cannot boot it ({problem}; see "
                f"'bbv doctor {target.name}')")
        else:
            chosen.append(target)
    if not chosen:
        raise BbvError("no target this tree has and this host can boot; see 'bbv doctor'")
    return chosen


def _output_dir(path: Path, option: str) -> Path:
    path = path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None
    return path


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def check_keyword(expression: str | None) -> None:
    """-k checked as pytest will parse it (its own parser when importable), so a typo is a
    usage error before any build or boot."""
    if expression is None:
        return
    try:
        from _pytest.mark.expression import Expression
    except ImportError:
        if _balanced(expression):
            return
        problem = "unbalanced parentheses"
    else:
        try:
            Expression.compile(expression)
            return
        except Exception as exc:  # SyntaxError (pytest 8.4+) or ParseError (older)
            detail = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
            column = getattr(exc, "offset", None) or getattr(exc, "column", None)
            problem = f"{detail} at column {column}" if column else detail
    raise UsageError(f"-k '{expression}' is not a pytest -k expression ({problem}); give one "
                     "such as 'shell and not net'")


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def check_devices(devices: list[str]) -> None:
    """The device options (as device_args gives them) checked as `bbv run` checks them, here
    before the tree, labgrid and the builds rather than in each target's export."""
    from barebox_virtio_cli.run import inputs

    snapshot = "--snapshot" in devices
    values = iter(devices)
    shares = 0
    for option in values:
        if option == "--blk":
            inputs.check_block_image(Path(next(values)), snapshot, check_locks=False)
        elif option == "--fs":
            inputs.parse_fs(next(values), shares)
            shares += 1
        elif option == "--env":
            inputs.parse_env(next(values))


def check_tree(src: Path) -> None:
    from barebox_virtio_cli.build.kbuild import check_tree as check_barebox_tree

    check_barebox_tree(src)
    if not (src / SUITE).is_dir() or not (src / "conftest.py").is_file():
        raise UsageError(f"{src} has no test suite ({SUITE} and conftest.py); barebox's labgrid "
                         "tests came with newer releases, so use a newer tree")


def check_labgrid() -> None:
    if importlib.util.find_spec("labgrid") is None or importlib.util.find_spec("pytest") is None:
        raise BbvError("barebox's test suite runs under labgrid's pytest plugin, which is not "
                       "installed for this Python; pip install 'bbv[labgrid]'")


def boot_problem(target: Target) -> str | None:
    """Why this host cannot boot the target (doctor's boot checks), or None."""
    from barebox_virtio_cli.doctor.checks import TargetFacts, target_checks
    from barebox_virtio_cli.doctor.host import packages, probe_qemu

    pkgs = packages()
    facts = TargetFacts(**probe_qemu(target), toolchain="not checked")
    for check in target_checks(target, facts, pkgs):
        if check.needed_for == "boot" and not check.ok:
            return f"{check.item}: {check.detail}"
    return None


class Children:
    """The process groups bbv test started; all are stopped on a signal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        with self.lock:
            if self.stopping:
                raise Stopped(0)
            proc = start_child(argv, start_new_session=True, **kwargs)
            self.procs.add(proc)
            return proc

    def finish(self, proc: subprocess.Popen) -> None:
        """Reap it and kill what is left of its group (a QEMU pytest did not stop)."""
        proc.wait()
        _killpg(proc.pid, signal.SIGKILL)
        with self.lock:
            self.procs.discard(proc)

    def stop_all(self, grace: float = 5.0) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for proc in procs:
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Board:
    """One status line per target: live (rich) on a terminal, else a line per change."""

    def __init__(self, names: list[str], live: bool) -> None:
        self.lines = dict.fromkeys(names, "waiting")
        self.lock = threading.Lock()
        self.live = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self, console=Console(stderr=True), refresh_per_second=4,
                             transient=True)
            self.live.start()

    def __rich__(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        with self.lock:
            for name, line in self.lines.items():
                table.add_row(f"[bold]{name}[/]", line)
        return table

    def set(self, name: str, line: str, say_it: bool = True) -> None:
        with self.lock:
            changed = self.lines.get(name) != line
            self.lines[name] = line
        if changed and self.live is None and say_it:
            from barebox_virtio_cli.util.status import say

            say(f"{name}: {_MARKUP.sub('', line)}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


class Session:
    def __init__(self, request: Request, board: Board) -> None:
        self.request = request
        self.board = board
        self.children = Children()
        self.python = sys.executable
        self.export_notes: dict[str, str] = {}

    def build_dir(self, target: Target) -> Path:
        from barebox_virtio_cli.build.record import default_build_dir

        return default_build_dir(self.request.src, target.name)

    def build(self, target: Target, result: res.TargetResult) -> Path | None:
        """Build (or with --no-build find) the target; its image, or None with result.error."""
        from barebox_virtio_cli.build.record import read_record

        out = result.build_dir = self.build_dir(target)
        if self.request.build:
            self.board.set(target.name, "building")
            started = time.monotonic()
            argv = res.build_argv(self.python, target.name, self.request.src, out,
                                  self.request.kconfig, self.request.make_jobs)
            done = self._run_quiet(argv)
            if done.returncode != 0:
                result.log = out / "bbv-build.log"
                result.error = f"build failed: {res.last_error(done.stdout)}"
                return None
            result.build_seconds = time.monotonic() - started
        record = read_record(out)
        image = record.image if record else None
        if not image or not image.is_file():
            result.error = f"no build of {target.name} in {out}; run without --no-build"
            return None
        missing = [f for f in self.request.kconfig if f not in record.kconfig]
        if missing:
            result.error = (f"the build in {out} lacks {', '.join(missing)}; run without "
                            "--no-build")
            return None
        return Path(image)

    def _run_quiet(self, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        """A bbv child with its output collected (stderr into stdout)."""
        proc = self.children.start(argv, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        try:
            out, _ = proc.communicate()
        finally:
            self.children.finish(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out)

    def export(self, target: Target, image: Path, result: res.TargetResult) -> Path | None:
        assert result.build_dir is not None
        env_file = result.build_dir / res.EXPORT_NAME
        argv = res.export_argv(self.python, target.name, image, self.request.src, env_file,
                               self.request.devices)
        done = self._run_quiet(argv)
        if done.returncode != 0:
            if done.returncode == 2:
                raise UsageError(res.last_error(done.stdout))
            result.error = f"bbv export labgrid failed: {res.last_error(done.stdout)}"
            return None
        self.export_notes[target.name] = done.stdout
        return env_file

    def test(self, target: Target, env_file: Path, result: res.TargetResult) -> None:
        assert result.build_dir is not None
        out = result.build_dir
        events = out / res.EVENTS_NAME
        events.write_text("")
        result.log = out / res.LOG_NAME
        junit = (self.request.junit_dir / f"{target.name}.xml"
                 if self.request.junit_dir else None)
        argv = res.pytest_argv(self.python, env_file, SUITE, junit, self.request.keyword,
                               out / res.CONSOLE_DIR, self.request.pytest_args)
        env = {**os.environ, "LG_BUILDDIR": str(out), "BBV_TEST_EVENTS": str(events)}
        env.pop("LG_ENV", None)
        self.board.set(target.name, "booting")
        started = time.monotonic()
        with open(result.log, "wb") as log:
            log.write(self.export_notes.get(target.name, "").encode())
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            proc = self.children.start(argv, cwd=self.request.src, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                while proc.poll() is None:
                    self._show(target.name, events)
                    time.sleep(0.2)
            finally:
                self.children.finish(proc)
        result.duration = time.monotonic() - started
        result.collected, result.tests, _ = res.read_events(events.read_text())
        if proc.returncode == 5 and not self.children.stopping:
            result.error = res.no_tests_ran(self.request.keyword, self.request.pytest_args)
        elif proc.returncode not in (0, 1) and not self.children.stopping:
            result.error = res.pytest_failure(proc.returncode, _tail(result.log))
        self.board.set(target.name, _verdict(result))

    def _show(self, name: str, events: Path) -> None:
        try:
            collected, done, running = res.read_events(events.read_text())
        except OSError:
            return
        self.board.set(name, res.progress(collected, len(done), running), say_it=False)

    def run(self) -> list[res.TargetResult]:
        results = [res.TargetResult(t.name) for t in self.request.targets]
        pool = ThreadPoolExecutor(max_workers=max(1, self.request.jobs))
        pending: list[Future] = []
        try:
            for target, result in zip(self.request.targets, results, strict=True):
                image = self.build(target, result)
                env_file = self.export(target, image, result) if image else None
                if env_file is None:
                    self.board.set(target.name, f"[red]{result.error}[/]")
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
    text = f"{result.count('passed')} passed, {result.failed} failed, " \
           f"{result.count('skipped')} skipped, {result.count('xfailed')} xfailed"
    return f"[red]{text}[/]" if result.failed else f"[green]{text}[/]"


def _tail(path: Path, size: int = 20000) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size))
        return fh.read().decode(errors="replace")


def run(request: Request, live: bool) -> list[res.TargetResult]:
    """Run everything; a SIGINT, SIGTERM or SIGHUP stops every child and raises Stopped."""
    board = Board([t.name for t in request.targets], live)
    session = Session(request, board)
    caught: list[int] = []

    def on_signal(signum, _frame):
        if not caught:
            caught.append(signum)
            threading.Thread(target=session.children.stop_all, daemon=True).start()

    from barebox_virtio_cli.util.signals import STOP_SIGNALS, handling

    try:
        with handling(STOP_SIGNALS, on_signal):
            try:
                results = session.run()
            except Stopped:
                results = []
            if caught:
                session.children.stop_all()
                raise Stopped(caught[0])
            return results
    finally:
        board.close()
