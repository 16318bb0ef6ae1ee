"""`bbv quickstart` as a service: from nothing to a booted, checked barebox, one step after the
other, each done by the service the other commands use (doctor's host checks, the release
download, build.service, build.fetch, images.create, run.service and a scripted session). The
decisions live in quickstart/plan.py."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build import kbuild
from barebox_virtio_cli.build.fetch import FetchRequest, install
from barebox_virtio_cli.build.kbuild import check_tree
from barebox_virtio_cli.build.record import read_record
from barebox_virtio_cli.build.service import BuildRequest, build, print_summary
from barebox_virtio_cli.build.toolchain import Finder
from barebox_virtio_cli.doctor.host import gather, packages
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.images.create import write_image
from barebox_virtio_cli.images.plan import AddFile, make_plan
from barebox_virtio_cli.qemu.args import activation_command, console_activation
from barebox_virtio_cli.qemu.machine import PTY, Machine
from barebox_virtio_cli.quickstart import plan as qs
from barebox_virtio_cli.quickstart.release import download, unpack
from barebox_virtio_cli.quickstart.uptodate import build_is_current, keep_token, kept_token
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.run.service import prepare
from barebox_virtio_cli.session.scripted import Script, run_session
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.hosttools import not_installed, which
from barebox_virtio_cli.util.output import escape, markup, table
from barebox_virtio_cli.util.paths import data_dir, runtime_dir
from barebox_virtio_cli.util.status import say


@dataclass
class QuickstartRequest:
    target: str = "vexpress"
    src: Path | None = None  # a barebox tree; without it a release is downloaded
    version: str | None = None
    sha256: str | None = None
    workdir: Path | None = None
    timeout: float = 30.0


@dataclass
class Booted:
    """What quickstart made and booted, for the commands to go on with."""

    target: str
    defconfig: str
    image: Path
    disks: list[Path]
    console: Path
    seconds: float


def run_quickstart(request: QuickstartRequest) -> Booted:
    if request.src is not None and (request.version or request.sha256):
        raise UsageError("--version and --sha256 choose a release to download; with --src "
                         "the tree is built as it is")
    version = qs.check_version(request.version or qs.DEFAULT_VERSION)
    sha256 = qs.check_sha256(request.sha256) if request.sha256 else None
    entry = load_catalog().get(request.target)
    if request.src is None:
        qs.mirror_url(os.environ)  # a malformed mirror fails now, not after three steps
    else:
        check_tree(request.src.resolve(), given=True)
    work = _workdir(request.workdir)
    started = time.monotonic()
    steps = _Steps(entry.name)
    with steps.step():
        _check_machine(entry)
    with steps.step():
        tree = _tree(request.src, work, version, sha256)
    with steps.step():
        defconfig, prefix = _toolchain(entry, tree)
    with steps.step():
        image = _build(entry, tree, work, defconfig, prefix)
    with steps.step():
        disks, token = _disks(work)
    with steps.step():
        console = _boot_and_check(entry, image, disks, token, request.timeout)
    return Booted(entry.name, defconfig, image, disks, console, time.monotonic() - started)


def _detail(text: str) -> None:
    say(text, prefix="  ")


class _Steps:
    """Numbers the steps, shows each one's progress and time, and turns a failure into
    'step N/M (name) failed: why; how to fix it'."""

    def __init__(self, target: str) -> None:
        self.target, self.index = target, 0

    @contextmanager
    def step(self) -> Iterator[None]:
        name = qs.STEPS[self.index]
        markup(f"[bold]bbv quickstart \\[{self.index + 1}/{len(qs.STEPS)}] {name}[/]",
               err=True)
        started = time.monotonic()
        try:
            yield
        except BbvError as exc:
            raise qs.step_error(self.index, name, self.target, exc) from exc
        markup(f"  [green]done[/] ({time.monotonic() - started:.1f} s)", err=True)
        self.index += 1


def default_workdir() -> Path:
    return data_dir() / "quickstart"


def _workdir(given: Path | None) -> Path:
    """A new or empty directory becomes quickstart's; one with other files is refused."""
    work = (given or default_workdir()).resolve()
    if work.exists() and not work.is_dir():
        raise UsageError(f"--workdir {work} exists and is not a directory")
    if work.is_dir() and any(work.iterdir()) and not (work / qs.MARKER).exists():
        raise UsageError(f"--workdir {work} holds other files; give a new or empty directory")
    work.mkdir(parents=True, exist_ok=True)
    (work / qs.MARKER).touch()
    return work


def _check_machine(target: Target) -> None:
    """Doctor's checks for this target; a missing compiler is left to the toolchain step,
    which can fetch one."""
    pkgs = packages()
    host, per_target = gather([target], pkgs)
    problems = [f"{c.item}: {c.detail}" + _packages(c.packages) for c in
                [*host, *per_target[target.name]]
                if not c.ok and c.needed_for in ("build", "boot")
                and not (c.item == "cross compiler" and target.crosstool_triplet)]
    problems += [not_installed(tool, pkgs.programs.get(tool, {}))
                 for tool in ("mkfs.vfat", "mcopy") if which(tool) is None]
    if problems:
        raise BbvError(f"this machine cannot build and boot target '{target.name}': "
                       f"{'; '.join(problems)}")
    qemu = next(c for c in per_target[target.name] if c.item == target.qemu)
    _detail(f"{target.qemu}: {qemu.detail}")


def _packages(packages: dict[str, str]) -> str:
    return f" (Debian/Ubuntu: apt install {packages['debian']})" if packages.get("debian") \
        else ""


def _tree(src: Path | None, work: Path, version: str, sha256: str | None) -> Path:
    if src is not None:
        src = src.resolve()
        kbuild.check_tree(src, given=True)
        _detail(f"source tree {src}")
        return src
    tree = work / f"barebox-{version}"
    if kbuild.is_barebox_tree(tree):
        _detail(f"source tree {tree} (unpacked before)")
        return tree
    archive = download(version, sha256)
    unpack(archive, tree)
    _detail(f"unpacked into {tree}")
    return tree


def _toolchain(target: Target, tree: Path) -> tuple[str, str]:
    """The compiler `bbv build` would pick; without one, `bbv toolchain fetch` for the target."""
    plan = kbuild.plan(tree, load_catalog(), target.name, None, None)
    try:
        found = Finder.default().find(target, plan.defconfig)
    except BbvError as exc:
        if not target.crosstool_triplet:
            raise
        _detail(f"no installed compiler fits ({exc}); fetching one from kernel.org")
        _, installed = install(FetchRequest(target.name))
        _detail(f"installed {installed}")
        found = Finder.default().find(target, plan.defconfig)
    _detail(f"{found.describe()}")
    return plan.defconfig, found.prefix


def _build(target: Target, tree: Path, work: Path, defconfig: str, prefix: str) -> Path:
    out = work / f"build-{target.name}"
    image = kbuild.target_image(out, target.image)
    ours = frozenset(work / name for name in qs.WORK_FILES)
    fragments = tuple(k for k in target.kconfig
                      if kbuild.CONFIG_LINE.match(k) or (tree / k).is_file())
    current, why = build_is_current(out, read_record(out), target.name, defconfig, prefix,
                                    tree, image, ours, fragments)
    if current:
        _detail(f"{image} is up to date ({why}); not rebuilt")
        return image
    _detail(f"building: {why}")
    # No cross_compile=prefix: build finds the same compiler step 3 did and names its source.
    print_summary(build(BuildRequest(target.name, src=tree, build_dir=out)))
    image = kbuild.target_image(out, target.image)
    if not image.is_file():
        raise BbvError(f"the build made no {target.image} (looked at {image})")
    return image


def _disks(work: Path) -> tuple[list[Path], bytes]:
    """A FAT disk with a file on it, kept from the last run if unchanged, and a blank one made
    anew (the raw-write check writes to it); and the token the file and the check use."""
    fat, raw = work / qs.FAT_IMAGE, work / qs.RAW_IMAGE
    token = kept_token(work, fat)
    if token is None:
        token = secrets.token_bytes(4)
        hello = work / qs.FILE_NAME
        hello.write_text(qs.greeting(token) + "\n")
        write_image(make_plan(qs.DISK_SIZE, None, True, [AddFile(hello, qs.FILE_NAME)]), fat,
                    force=True)
        keep_token(work, fat, token)
        _detail(f"{fat} (FAT, {qs.FILE_NAME}, {qs.DISK_SIZE >> 20} MiB)")
    else:
        _detail(f"{fat} kept: unchanged since the last run")
    write_image(make_plan(qs.DISK_SIZE, None, False, []), raw, force=True)
    _detail(f"{raw} (blank, {qs.DISK_SIZE >> 20} MiB)")
    return [fat, raw], token


def _boot_and_check(target: Target, image: Path, disks: list[Path], token: bytes,
                    timeout: float) -> Path:
    """Boot with both disks, an RNG and the virtio console; run the checks on that console."""
    target, info, spec = prepare(RunRequest(
        target=target.name, image=str(image), blk=tuple(str(d) for d in disks), rng=1,
        console=str(runtime_dir() / f"quickstart-{target.name}.console")))
    socket = spec.console
    items = qs.checks(token, target.console)
    activation = activation_command(target) \
        if console_activation(target, info) == "manual" else None
    script = Script(qs.script_commands(items), [], timeout, virtio=True, activation=activation)
    _detail(f"booting {image.name} in {info.binary}; checks on the virtio console {socket}")
    result = run_session(Machine(target, info, spec, PTY), script, on_step=_show_step)
    outputs = [(s.output, s.exit_status if s.status != "skipped" else None)
               for s in result.commands]
    outcomes = qs.judge(items, outputs)
    outcomes = qs.raw_on_host(outcomes, disks[1].read_bytes()[:4], token)
    console_ok = result.boot.status == "passed" and result.error is None
    outcomes.insert(0, qs.Outcome("virtio console", console_ok,
                                  "the checks below were typed on it" if console_ok
                                  else result.error or "no session"))
    _table(target, outcomes)
    if result.error or not all(o.ok for o in outcomes):
        for line in result.last_lines if result.error else []:
            say(line, prefix="    ")
        failed = [o.name for o in outcomes if not o.ok]
        raise BbvError(f"{len(failed)} of {len(outcomes)} checks failed ({', '.join(failed)})"
                       + (f": {result.error}" if result.error else ""))
    return socket


def _show_step(step) -> None:
    if step.command is None:
        _detail(f"barebox prompt after {step.duration:.1f} s")
    else:
        _detail(f"$ {step.command}  [{'ok' if step.status == 'passed' else step.status}]")


def _table(target: Target, outcomes: list[qs.Outcome]) -> None:
    table(f"virtio devices on {target.name}", ("check", "result", "detail"),
          [(o.name, "[green]ok[/]" if o.ok else "[red]FAILED[/]", escape(o.detail))
           for o in outcomes])
