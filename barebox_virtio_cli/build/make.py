"""Side effects of `bbv build`: the build directory lock, --clean, and running make with a live
progress line while the full output goes to a log file."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.build import kbuild, progress
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util import lockfile, status
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.output import echo
from barebox_virtio_cli.util.processes import start_child, stop
from barebox_virtio_cli.util.signals import raising

LOCK_NAME = ".bbv-lock"
LOG_NAME = "bbv-build.log"
# host tool -> Debian package
HOST_TOOLS = {"make": "make", "gcc": "gcc", "bison": "bison", "flex": "flex"}


def check_host_tools(path_env: str | None = None) -> None:
    missing = [t for t in HOST_TOOLS if on_path(t, path_env) is None]
    if missing:
        raise BbvError(f"host tools missing: {', '.join(missing)}; install them, on Debian: "
                       f"apt install {' '.join(HOST_TOOLS[t] for t in missing)}")


@contextmanager
def locked(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the build directory, or fail at once naming the holder."""
    def unusable(exc: OSError) -> BbvError:  # not ours (another user's build, a read-only place)
        return BbvError(f"cannot build in {build_dir}: {exc.strerror or exc}; give a build "
                        "directory you can write with -O DIR")

    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(build_dir, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise unusable(exc) from None
    with lockfile.exclusive(build_dir / LOCK_NAME, lambda pid: _busy(build_dir, pid), unusable):
        yield


def check_not_busy(build_dir: Path) -> None:
    """Fail if a build holds the directory's lock: a first build holds it before its output
    looks like a build directory, which a second build must not call foreign."""
    lockfile.check_free(build_dir / LOCK_NAME, lambda pid: _busy(build_dir, pid))


def _busy(build_dir: Path, holder: str) -> BbvError:
    return BbvError(f"another build is running in {build_dir} (pid {holder}); wait for it or "
                    "use another --build-dir")


def clean(build_dir: Path, record_name: str) -> None:
    """Empty the build directory, but only if it is one (never a source tree or user data)."""
    if not kbuild.is_build_dir(build_dir, record_name):
        raise BbvError(f"--clean: {build_dir} does not look like a barebox build directory (no "
                       f"{record_name}, .config, Makefile, include/generated); refusing to delete "
                       "anything in it. Remove it yourself or choose another --build-dir")
    for child in build_dir.iterdir():
        if child.name in (LOCK_NAME, record_name):
            continue  # the record goes last (replaced): the directory stays recognisably bbv's
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@dataclass
class Progress:
    """What the live line shows (util/status draws it): make's steps so far, the current one,
    and the estimate from the previous build."""

    label: str
    previous: progress.Previous | None = None
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    current: str = ""

    def feed(self, line: str) -> None:
        found = kbuild.step(line)
        if found:
            self.steps += 1
            self.current = f"{found[0]:<7} {found[1]}"

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        return (f"{self.label} {progress.clock(elapsed)} "
                f"{progress.describe(self.steps, elapsed, self.previous)}  {self.current[:90]}")


@dataclass
class MakeResult:
    returncode: int
    seconds: float
    errors: list[str]
    tail: list[str]
    steps: int = 0


def run(argv: list[str], cwd: Path, log: Path, label: str, verbose: bool,
        previous: progress.Previous | None = None,
        extra_env: dict[str, str] | None = None) -> MakeResult:
    """Run make; every line goes to the log (appended), live progress or the raw stream."""
    env = {**os.environ, **(extra_env or {}), "LC_ALL": "C"}
    env.pop("KBUILD_OUTPUT", None)  # O= on the command line says where
    tail: collections.deque[str] = collections.deque(maxlen=40)
    errors: list[str] = []
    shown = Progress(label, previous)
    try:
        proc = start_child(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                           errors="replace", bufsize=1)
    except OSError as exc:
        raise BbvError(f"cannot run {argv[0]}: {exc.strerror}; on Debian: apt install make") \
            from exc
    # Stopping make is set up first: a signal while rich loads for the display stops it too.
    with _stopped_on_exit(proc), log.open("a") as logf, \
            nullcontext() if verbose else status.spinning(shown.text):
        logf.write(f"$ {' '.join(argv)}\n")
        assert proc.stdout is not None
        for line in proc.stdout:
            logf.write(line)
            line = line.rstrip("\n")
            tail.append(line)
            if len(errors) < 8 and kbuild.error_lines([line]):
                errors.append(line)
            if verbose:
                echo(line)
            else:
                shown.feed(line)
        rc = proc.wait()
    return MakeResult(rc, time.monotonic() - shown.started, errors, list(tail),
                      shown.steps)


@contextmanager
def _stopped_on_exit(proc: subprocess.Popen) -> Iterator[None]:
    """make never outlives bbv (and its lock): SIGTERM/SIGHUP to bbv raise Signalled (exit
    128+N), and on any way out make gets SIGTERM, then SIGKILL if it lingers."""
    try:
        with raising():
            yield
    finally:
        stop(proc, grace=10)  # make passes SIGTERM on to the compilers it runs
