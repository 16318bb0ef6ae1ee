"""bbv build: configure and build barebox out of tree, then record the result for `bbv run`."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import click

from barebox_virtio_cli.build import kbuild
from barebox_virtio_cli.build import record as buildrecord
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import Catalog, Target, load_catalog
from barebox_virtio_cli.util.status import say
from barebox_virtio_cli.util.validate import Number

# What barebox's own container builds add (scripts/container.sh): the target tools need a libc.
DISABLE_TARGET_TOOLS = "common/boards/configs/disable_target_tools.config"


@click.command()
@click.argument("target", required=False, shell_complete=complete.build_targets)
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree [default: current directory].")
@click.option("--arch", help="bbv arch name (arm64, mips, ...) or barebox ARCH.",
              shell_complete=complete.arch_names)
@click.option("--defconfig", help="Defconfig to build instead of the target's.",
              shell_complete=complete.defconfigs)
@click.option("-O", "--build-dir", type=click.Path(path_type=Path, dir_okay=True),
              help="Output directory [default: $KBUILD_OUTPUT, else SRC/build-TARGET].")
@click.option("--clean", is_flag=True, help="Empty the build directory first.")
@click.option("--kconfig-add", "kconfig_add", multiple=True, metavar="FILE|CONFIG_X=y",
              help="Config fragment or single option merged after the defconfig (repeatable).")
@click.option("--target-tools", is_flag=True,
              help="Keep the target tools (bareboxenv-target, ...): they need a libc for the "
                   "target, which nolibc and most cross compilers lack.")
@click.option("--cross-compile", help="Compiler prefix, e.g. arm-linux-gnueabihf-.")
@click.option("-j", "--jobs", type=Number(int, 1, maximum=4096),
              help="make -j [default: CPU count].")
@click.option("-v", "--verbose", is_flag=True, help="Stream make's output as is.")
def build(target: str | None, src: Path | None, arch: str | None, defconfig: str | None,
          build_dir: Path | None, clean: bool, kconfig_add: tuple[str, ...],
          target_tools: bool, cross_compile: str | None, jobs: int | None, verbose: bool) -> None:
    """Build barebox for TARGET (a bbv target or a defconfig) in a barebox source tree."""
    from barebox_virtio_cli.build import make as make_runner
    from barebox_virtio_cli.build.toolchain import Finder

    given_src, src = src is not None, (src or Path.cwd()).resolve()
    kbuild.check_tree(src, given=given_src)
    catalog = load_catalog()
    plan = kbuild.plan(src, catalog, target, arch, defconfig)
    say(f"defconfig: {plan.defconfig} (ARCH={plan.arch}; {plan.why})")
    out = _build_dir(src, plan, build_dir)
    fragments, fragment_files = _fragments(plan, src, kconfig_add, target_tools)
    make_runner.check_host_tools()
    bits = kbuild.defconfig_bits(src, plan.arch, plan.defconfig)
    toolchain = Finder.default().find(_toolchain_target(catalog, plan, bits), plan.defconfig,
                                      cross_compile)
    say(f"toolchain: {toolchain.describe()}")
    jobs = jobs or os.cpu_count() or 1
    with make_runner.locked(out):
        if clean:
            make_runner.clean(out, buildrecord.RECORD_NAME)
        log = out / make_runner.LOG_NAME
        log.write_text("")
        started = time.monotonic()
        make = functools.partial(kbuild.make_argv, jobs, plan.arch, out, toolchain.prefix)
        _configure(src, out, plan, fragments, fragment_files, make, verbose)
        result = make_runner.run(make(), src, log, f"building {plan.defconfig}", verbose)
        if result.returncode != 0:
            _fail(result, log)
        seconds = time.monotonic() - started
        images = kbuild.images(out)
        image = kbuild.target_image(out, plan.target.image) if plan.target else None
        if image and image.is_file() and image not in images:
            images.append(image)
        buildrecord.write_record(out, {
            "target": plan.name, "arch": plan.arch, "defconfig": plan.defconfig,
            "kconfig": fragments, "toolchain": toolchain.prefix,
            "toolchain_source": toolchain.source, "gcc": toolchain.info.machine,
            "gcc_version": toolchain.info.version, "src": str(src),
            "image": str(image) if image and image.is_file() else None,
            "images": [str(p) for p in images], "seconds": round(seconds, 1),
        })
    _summary(out, images, image, seconds)


def _build_dir(src: Path, plan: kbuild.Plan, given: Path | None) -> Path:
    env = os.environ.get("KBUILD_OUTPUT")
    out = (given or (Path(env) if env else None) or
           buildrecord.default_build_dir(src, plan.name)).resolve()
    if out == src:
        raise UsageError(f"build directory {out} is the source tree; bbv builds out of tree, "
                         "give another --build-dir")
    if out.exists() and not out.is_dir():
        raise UsageError(f"build directory {out} exists and is not a directory")
    if not kbuild.is_build_dir(out, buildrecord.RECORD_NAME):
        from barebox_virtio_cli.build.make import check_not_busy

        check_not_busy(out)
        raise UsageError(f"build directory {out} holds other files and is not a barebox build "
                         "directory; give a new or empty --build-dir")
    return out


def _fragments(plan: kbuild.Plan, src: Path, given: tuple[str, ...],
               target_tools: bool) -> tuple[list[str], list[Path | str]]:
    """bbv's and the target's fragments (skipped if this tree lacks the file), then the user's."""
    ours = [] if target_tools else [DISABLE_TARGET_TOOLS]
    ours += plan.target.kconfig if plan.target else []
    names, items = [], []
    for name in ours:
        if kbuild.CONFIG_LINE.match(name) or (src / name).is_file():
            names.append(name)
            items.append(name if kbuild.CONFIG_LINE.match(name) else src / name)
        else:
            say(f"kconfig: {name} is not in this tree, skipped")
    for name in given:
        names.append(name)
        items.append(_fragment(name, src))
    return names, items


def _fragment(item: str, src: Path) -> Path | str:
    """A CONFIG_X=y line stays a string; a file is found relative to the cwd, then the tree."""
    if kbuild.CONFIG_LINE.match(item):
        return item
    bases = list(dict.fromkeys((Path.cwd(), src)))
    for base in bases:
        path = base / item
        if path.is_file():
            return path.resolve()
    raise UsageError(f"--kconfig-add {item}: neither a CONFIG_X=value line nor a file (looked in "
                     f"{' and '.join(map(str, bases))})")


def _toolchain_target(catalog: Catalog, plan: kbuild.Plan, bits: int | None) -> Target:
    """The target whose compiler rules apply; for a defconfig outside the catalog, those of
    the same ARCH and bitness (or, for an ARCH bbv does not know, whatever the user names)."""
    if plan.target:
        return plan.target
    same = [t for t in catalog.targets.values() if t.arch == plan.arch]
    same = [t for t in same if t.bits == bits] or same
    if not same:
        any_target = next(iter(catalog.targets.values()))
        return dataclasses.replace(any_target, name=plan.defconfig, arch=plan.arch,
                                   gcc_machine=["*"], toolchain_prefixes=[],
                                   cross_compile_arch="", crosstool_triplet="",
                                   toolchain_package="")
    return dataclasses.replace(
        same[0], name=plan.defconfig,
        gcc_machine=_union(t.gcc_machine for t in same),
        toolchain_prefixes=_union(t.toolchain_prefixes for t in same))


def _union(lists) -> list[str]:
    return list(dict.fromkeys(x for items in lists for x in items))


def _configure(src: Path, out: Path, plan: kbuild.Plan, fragments: list[str],
               files: list[Path | str], make: Callable[..., list[str]], verbose: bool) -> None:
    from barebox_virtio_cli.build import make as make_runner

    record = buildrecord.read_record(out) or {}
    same = (record.get("defconfig") == plan.defconfig and record.get("arch") == plan.arch
            and record.get("kconfig", []) == fragments)
    if (out / ".config").is_file() and same:
        say(f"incremental build in {out} (keeping its .config; --clean for a fresh one)")
        return
    say(f"configuring in {out}")
    log = out / make_runner.LOG_NAME
    _step(make_runner.run(make(plan.defconfig), src, log, f"make {plan.defconfig}", verbose),
          log)
    if not files:
        return
    paths = []
    for i, item in enumerate(files):
        if isinstance(item, str):
            path = out / f".bbv-fragment-{i}.config"
            path.write_text(item + "\n")
            item = path
        paths.append(item)
    merge = src / "scripts" / "kconfig" / "merge_config.sh"
    _step(make_runner.run(["sh", str(merge), "-m", "-O", str(out), str(out / ".config"),
                           *map(str, paths)], out, log, "merge_config.sh", verbose), log)
    _step(make_runner.run(make("olddefconfig"), src, log, "make olddefconfig", verbose), log)
    wanted: dict[str, str] = {}
    for path in paths:
        wanted.update(kbuild.parse_config(path.read_text()))
    took, missed = kbuild.config_outcome(wanted, kbuild.parse_config((out / ".config").read_text()))
    say(f"kconfig: added {', '.join(fragments)}")
    if took:
        say(f"kconfig: set {', '.join(took)}")
    if missed:
        say(f"kconfig: NOT set (missing dependency or unknown symbol): {', '.join(missed)}")


def _step(result, log: Path) -> None:
    if result.returncode != 0:
        _fail(result, log)


def _fail(result, log: Path) -> None:
    lines = result.errors or result.tail[-5:]
    for line in lines:
        click.echo(f"  {line}", err=True)
    raise BbvError(f"make failed (exit status {result.returncode}) after "
                   f"{result.seconds:.0f} s; full output in {log}")


def _summary(out: Path, images: list[Path], image: Path | None, seconds: float) -> None:
    from rich.console import Console

    console = Console(soft_wrap=True)
    shown = [p for p in images if p != image]
    if image is not None and image.is_file():
        console.print(f"[bold green]{image}[/]  {_size(image)}  (the target's image)")
    elif image is not None:
        console.print(f"[bold red]{image.name} was not built[/]: this defconfig does not "
                      "produce the target's image")
    for p in shown[:12]:
        console.print(f"{p}  {_size(p)}")
    if len(shown) > 12:
        console.print(f"... and {len(shown) - 12} more in {out / 'images'}")
    console.print(f"built in {seconds:.1f} s; recorded in {out / buildrecord.RECORD_NAME}")


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1024:.0f} KiB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MiB"
