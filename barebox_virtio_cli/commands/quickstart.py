"""bbv quickstart: from nothing to a booted, checked barebox, one step after the other, each
done by what the other commands use (doctor's checks, build, image create, scripted boots).
The decisions live in barebox_virtio_cli.quickstart.plan."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.quickstart import plan as qs
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.validate import Number


def _default_workdir() -> Path:
    from barebox_virtio_cli.util.paths import data_dir

    return data_dir() / "quickstart"


@click.command()
@click.option("-t", "--target", default="vexpress", show_default=True,
              help="Target to build and boot (see 'bbv targets').",
              shell_complete=complete.target_names)
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree to build; without it a release is downloaded.")
@click.option("--version", "version", metavar="YYYY.MM.N",
              help=f"barebox release to download [default: {qs.DEFAULT_VERSION}].")
@click.option("--sha256", metavar="HEX",
              help="Expected sha256 of the release tarball, for a release bbv has no sum for.")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the source, build and disk images go "
                   f"[default: {_default_workdir()}].")
@click.option("--timeout", type=Number(float, 0, exclusive_min=True, unit="seconds"), default=30.0,
              show_default=True, metavar="S", help="Seconds for the boot and for each check.")
@click.pass_context
def quickstart(ctx: click.Context, target: str, src: Path | None, version: str | None,
               sha256: str | None, workdir: Path | None, timeout: float) -> None:
    """Get barebox, build TARGET, make two disks, boot them with an RNG and the virtio console,
    and check that each device works.

    \b
    Examples:
      bbv quickstart                       # download barebox from barebox.org
      bbv quickstart --src ~/barebox       # your tree, works offline
      bbv quickstart --version 2024.09.0 --workdir /tmp/qs
    """
    if src is not None and (version or sha256):
        raise UsageError("--version and --sha256 choose a release to download; with --src "
                         "the tree is built as it is")
    version = qs.check_version(version or qs.DEFAULT_VERSION)
    sha256 = qs.check_sha256(sha256) if sha256 else None
    entry = load_catalog().get(target)
    if src is None:
        qs.mirror_url(os.environ)  # a malformed mirror fails now, not after three steps
    else:
        from barebox_virtio_cli.build.kbuild import check_tree

        check_tree(src.resolve(), given=True)
    work = _workdir(workdir)
    started = time.monotonic()
    steps = _Steps(entry.name)
    with steps.step():
        _check_machine(entry)
    with steps.step():
        tree = _tree(src, work, version, sha256)
    with steps.step():
        defconfig, prefix = _toolchain(ctx, entry, tree)
    with steps.step():
        image = _build(ctx, entry, tree, work, defconfig, prefix)
    with steps.step():
        disks, token = _disks(work)
    with steps.step():
        console = _boot_and_check(entry, image, disks, token, timeout)
    from rich.console import Console

    out = Console(soft_wrap=True)
    out.print(f"[bold green]barebox ({defconfig}) boots with two disks, an RNG and the virtio "
              f"console[/] ({time.monotonic() - started:.0f} s). Go on with:")
    for line in qs.go_on(entry.name, image, disks, console):
        out.print(f"  {line}", markup=False, highlight=False)


class _Steps:
    """Numbers the steps, shows each one's progress and time, and turns a failure into
    'step N/M (name) failed: why; how to fix it'."""

    def __init__(self, target: str) -> None:
        from rich.console import Console

        self.target, self.index = target, 0
        self.console = Console(stderr=True, soft_wrap=True)

    @contextmanager
    def step(self) -> Iterator[None]:
        name = qs.STEPS[self.index]
        self.console.print(f"[bold]bbv quickstart \\[{self.index + 1}/{len(qs.STEPS)}] "
                           f"{name}[/]")
        started = time.monotonic()
        try:
            yield
        except BbvError as exc:
            raise qs.step_error(self.index, name, self.target, exc) from exc
        self.console.print(f"  [green]done[/] ({time.monotonic() - started:.1f} s)")
        self.index += 1


def say(text: str) -> None:
    click.echo(f"  {text}", err=True)


def _workdir(given: Path | None) -> Path:
    """A new or empty directory becomes quickstart's; one with other files is refused."""
    work = (given or _default_workdir()).resolve()
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
    from barebox_virtio_cli.commands.doctor import gather, packages
    from barebox_virtio_cli.util.hosttools import not_installed, which

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
    say(f"{target.qemu}: {qemu.detail}")


def _packages(packages: dict[str, str]) -> str:
    return f" (Debian/Ubuntu: apt install {packages['debian']})" if packages.get("debian") \
        else ""


def _tree(src: Path | None, work: Path, version: str, sha256: str | None) -> Path:
    from barebox_virtio_cli.build import kbuild

    if src is not None:
        src = src.resolve()
        kbuild.check_tree(src, given=True)
        say(f"source tree {src}")
        return src
    tree = work / f"barebox-{version}"
    if kbuild.is_barebox_tree(tree):
        say(f"source tree {tree} (unpacked before)")
        return tree
    archive = _download(version, sha256)
    _unpack(archive, tree)
    say(f"unpacked into {tree}")
    return tree


def _download(version: str, given: str | None) -> Path:
    """The release tarball in the cache, downloaded and verified once; its sum is kept beside
    it, so that later runs, offline too, check the cached file against it."""
    from barebox_virtio_cli.build import fetch as tf
    from barebox_virtio_cli.util.paths import cache_dir

    name = qs.tarball_name(version)
    cache = cache_dir() / "barebox"
    archive, sum_file = cache / name, cache / f"{name}.sha256"
    expected = qs.pinned_sha256(version, given)
    if archive.is_file() and sum_file.is_file():
        kept = tf.parse_sums(sum_file.read_text(), name)
        if kept and kept == (expected or kept) and _sha256(archive) == kept:
            say(f"{name} from the cache ({archive})")
            return archive
    base = qs.mirror_url(os.environ)
    downloader = tf.Downloader(hint=f"offline? pass --src DIR with a barebox source tree, or "
                                    f"set ${qs.MIRROR_ENV} to a mirror")
    if expected is None:
        expected = _published_sum(downloader, f"{base}/{name}.sha256", name, version)
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        say(f"downloading {base}/{name}")
        with tf.DownloadBar(name) as update:
            got = downloader.to_file(f"{base}/{name}", tmp, update)
        if got != expected:
            raise BbvError(f"checksum mismatch for {name}: expected {expected}, got {got}; "
                           "the download was deleted")
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    sum_file.write_text(f"{expected}  {name}\n")
    say(f"sha256 {expected} verified; cached in {archive}")
    return archive


def _published_sum(downloader, url: str, name: str, version: str) -> str:
    from barebox_virtio_cli.build import fetch as tf

    try:
        text = downloader.text(url)
    except BbvError as exc:
        if not str(exc).startswith("not found"):  # unreachable: that error says what to do
            raise
        text = ""
    found = tf.parse_sums(text, name)
    if found is None:
        raise BbvError(f"bbv knows no sha256 for barebox {version} and {url} gives none; pass "
                       "--sha256 HEX from a source you trust, or --src DIR")
    return found


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, tree: Path) -> None:
    """Safe extraction (toolchain_fetch's checks) into a temporary directory beside the tree,
    moved into place only when it is a barebox tree."""
    from barebox_virtio_cli.build import fetch as tf
    from barebox_virtio_cli.build import kbuild

    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=tree.parent))
    try:
        with _spinner(f"unpacking {archive.name}"):
            tf.extract(archive, tmp)
        found = [p for p in tmp.iterdir() if kbuild.is_barebox_tree(p)]
        if not found:
            raise BbvError(f"{archive.name} holds no barebox source tree (no top directory "
                           "with barebox's Makefile, Kconfig and arch/)")
        if tree.exists():
            shutil.rmtree(tree)  # a half-unpacked leftover: it is no barebox tree
        found[0].rename(tree)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(text) if console.is_terminal else nullcontext():
        yield


def _toolchain(ctx: click.Context, target: Target, tree: Path) -> tuple[str, str]:
    """The compiler `bbv build` would pick; without one, `bbv toolchain fetch` for the target."""
    from barebox_virtio_cli.build import kbuild
    from barebox_virtio_cli.build.toolchain import Finder

    plan = kbuild.plan(tree, load_catalog(), target.name, None, None)
    try:
        found = Finder.default().find(target, plan.defconfig)
    except BbvError as exc:
        if not target.crosstool_triplet:
            raise
        say(f"no installed compiler fits ({exc}); fetching one from kernel.org")
        from barebox_virtio_cli.commands.toolchain import fetch

        ctx.invoke(fetch, arch=target.name, version=None, mirror=None, force=False)
        found = Finder.default().find(target, plan.defconfig)
    say(f"{found.describe()}")
    return plan.defconfig, found.prefix


def _build(ctx: click.Context, target: Target, tree: Path, work: Path, defconfig: str,
           prefix: str) -> Path:
    from barebox_virtio_cli.build import kbuild
    from barebox_virtio_cli.build.record import read_record
    from barebox_virtio_cli.commands.build import build
    from barebox_virtio_cli.quickstart.uptodate import build_is_current

    out = work / f"build-{target.name}"
    image = kbuild.target_image(out, target.image)
    ours = frozenset(work / name for name in qs.WORK_FILES)
    fragments = tuple(k for k in target.kconfig
                      if kbuild.CONFIG_LINE.match(k) or (tree / k).is_file())
    current, why = build_is_current(out, read_record(out), target.name, defconfig, prefix,
                                    tree, image, ours, fragments)
    if current:
        say(f"{image} is up to date ({why}); not rebuilt")
        return image
    say(f"building: {why}")
    # No cross_compile=prefix: build finds the same compiler step 3 did and names its source.
    ctx.invoke(build, target=target.name, src=tree, build_dir=out)
    image = kbuild.target_image(out, target.image)
    if not image.is_file():
        raise BbvError(f"the build made no {target.image} (looked at {image})")
    return image


def _disks(work: Path) -> tuple[list[Path], bytes]:
    """A FAT disk with a file on it, kept from the last run if unchanged, and a blank one made
    anew (the raw-write check writes to it); and the token the file and the check use."""
    from barebox_virtio_cli.commands.image import build
    from barebox_virtio_cli.images.plan import AddFile, make_plan
    from barebox_virtio_cli.quickstart.uptodate import keep_token, kept_token

    fat, raw = work / qs.FAT_IMAGE, work / qs.RAW_IMAGE
    token = kept_token(work, fat)
    if token is None:
        token = secrets.token_bytes(4)
        hello = work / qs.FILE_NAME
        hello.write_text(qs.greeting(token) + "\n")
        build(make_plan(qs.DISK_SIZE, None, True, [AddFile(hello, qs.FILE_NAME)]), fat,
              force=True)
        keep_token(work, fat, token)
        say(f"{fat} (FAT, {qs.FILE_NAME}, {qs.DISK_SIZE >> 20} MiB)")
    else:
        say(f"{fat} kept: unchanged since the last run")
    build(make_plan(qs.DISK_SIZE, None, False, []), raw, force=True)
    say(f"{raw} (blank, {qs.DISK_SIZE >> 20} MiB)")
    return [fat, raw], token


def _boot_and_check(target: Target, image: Path, disks: list[Path], token: bytes,
                    timeout: float) -> Path:
    """Boot with both disks, an RNG and the virtio console; run the checks on that console."""
    from barebox_virtio_cli.commands.run import prepare
    from barebox_virtio_cli.qemu.args import (
        activation_command,
        build_command,
        console_activation,
        flatten,
    )
    from barebox_virtio_cli.session.scripted import Script, run_session
    from barebox_virtio_cli.util.paths import runtime_dir

    target, info, spec = prepare(
        target.name, None, image=str(image), blk=[str(d) for d in disks], rng=1,
        console=str(runtime_dir() / f"quickstart-{target.name}.console"), input_=False,
        net=False, port_forward=(), fs=(), env=(), memory=None, cpu=None, machine=None,
        snapshot=False, graphic=False, qemu_arg=())
    socket = spec.console
    items = qs.checks(token, target.console)
    activation = activation_command(target) \
        if console_activation(target, info) == "manual" else None
    script = Script(qs.script_commands(items), [], timeout, spec.console, activation)
    say(f"booting {image.name} in {info.binary}; checks on the virtio console {socket}")
    result = run_session(flatten(build_command(target, spec, info)), script, target.name,
                         on_step=_show_step)
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
            click.echo(f"    {line}", err=True)
        failed = [o.name for o in outcomes if not o.ok]
        raise BbvError(f"{len(failed)} of {len(outcomes)} checks failed ({', '.join(failed)})"
                       + (f": {result.error}" if result.error else ""))
    return socket


def _show_step(step) -> None:
    if step.command is None:
        say(f"barebox prompt after {step.duration:.1f} s")
    else:
        say(f"$ {step.command}  [{'ok' if step.status == 'passed' else step.status}]")


def _table(target: Target, outcomes: list[qs.Outcome]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"virtio devices on {target.name}")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(o.name, "[green]ok[/]" if o.ok else "[red]FAILED[/]", escape(o.detail))
    Console().print(table)
