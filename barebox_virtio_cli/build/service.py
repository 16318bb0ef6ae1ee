"""Building barebox for `bbv build` and `bbv run --build`: configure out of tree, make what the
target boots (or every image), with ccache when it works, and record the result for `bbv run`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build import ccache as ccache_mod
from barebox_virtio_cli.build import kbuild, progress
from barebox_virtio_cli.build import make as make_runner
from barebox_virtio_cli.build import record as buildrecord
from barebox_virtio_cli.build.make import check_not_busy
from barebox_virtio_cli.build.toolchain import Finder, Toolchain
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import Catalog, Target, load_catalog
from barebox_virtio_cli.util import userconfig
from barebox_virtio_cli.util.output import markup
from barebox_virtio_cli.util.paths import cache_dir
from barebox_virtio_cli.util.signals import deferred
from barebox_virtio_cli.util.status import say

# What barebox's own container builds add (scripts/container.sh): the target tools need a libc.
DISABLE_TARGET_TOOLS = "common/boards/configs/disable_target_tools.config"


@dataclass
class BuildRequest:
    target: str | None = None  # a bbv target or a defconfig
    src: Path | None = None
    arch: str | None = None
    defconfig: str | None = None
    build_dir: Path | None = None
    clean: bool = False
    kconfig_add: tuple[str, ...] = ()
    target_tools: bool = False
    cross_compile: str | None = None
    cross_compile_source: str | None = None  # where cross_compile came from, if not the CLI
    jobs: int | None = None
    verbose: bool = False
    all_images: bool | None = None  # None: only the target's image when a target is named
    no_ccache: bool = False
    index: bool = True  # `bbv run` boots this build from now on (False: bbv bisect's builds)
    exact: bool = False  # only the defconfig and kconfig_add, none of bbv's or the target's
    debug_info: bool = True  # False: C compiled without debug info (kbuild.NO_DEBUG_INFO)


class BuildFailed(BbvError):
    """make failed; errors: its first error lines, log: the full output."""

    def __init__(self, message: str, errors: list[str], log: Path) -> None:
        super().__init__(message)
        self.errors, self.log = errors, log


@dataclass
class BuildResult:
    build_dir: Path
    image: Path | None  # the target's image
    images: list[Path]
    seconds: float
    scope: str  # "target" or "all"
    record: buildrecord.BuildRecord | None = None


def build(req: BuildRequest) -> BuildResult:
    given_src, src = req.src is not None, (req.src or Path.cwd()).resolve()
    kbuild.check_tree(src, given=given_src)
    catalog = load_catalog()
    plan = kbuild.plan(src, catalog, req.target, req.arch, req.defconfig)
    say(f"defconfig: {plan.defconfig} (ARCH={plan.arch}; {plan.why})")
    out = _build_dir(src, plan, req.build_dir)
    fragments, fragment_files = _fragments(plan, src, req.kconfig_add, req.target_tools,
                                           req.exact)
    _check_user_fragments(src, plan, fragment_files[len(fragment_files) - len(req.kconfig_add):])
    if not req.clean:
        _check_build_dir(src, out, plan, catalog)
    make_runner.check_host_tools()
    bits = kbuild.defconfig_bits(src, plan.arch, plan.defconfig)
    toolchain = Finder.default().find(_toolchain_target(catalog, plan, bits), plan.defconfig,
                                      req.cross_compile)
    if req.cross_compile and req.cross_compile_source:
        toolchain = dataclasses.replace(toolchain, source=req.cross_compile_source)
    cache = _ccache(req.no_ccache)
    goals, scope = _goals(src, plan, req.all_images, catalog.targets.get(req.target or ""))
    jobs = req.jobs or os.cpu_count() or 1
    with contextlib.ExitStack() as held:
        # From the directory's creation to its record a signal waits: an interrupted first
        # build must leave a directory bbv accepts again.
        with deferred():
            held.enter_context(make_runner.locked(out))
            previous_record = buildrecord.read_record(out)
            if not req.clean:
                buildrecord.mark(out, plan.name)
        history = previous_record.progress if previous_record else {}
        if cache and not req.clean and _built_without_ccache(previous_record):
            say("ccache: not used here: this directory was built without it, and a new "
                "compiler command recompiles everything; --clean to start over with ccache")
            cache = None
        say(f"toolchain: {toolchain.describe()}" + (f", {cache.describe()}" if cache else ""))
        if req.clean:  # the record stays while the rest goes, then starts anew
            make_runner.clean(out, buildrecord.RECORD_NAME)
            buildrecord.mark(out, plan.name, replace=True)
        log = out / make_runner.LOG_NAME
        log.write_text("")
        started = time.monotonic()

        def make(prefix: str, *args: str) -> list[str]:
            return kbuild.make_argv(jobs, plan.arch, out, prefix, *args,
                                    debug_info=req.debug_info)

        prefix = cache.prefix(toolchain.prefix) if cache else toolchain.prefix
        fresh = _configure(src, out, plan, fragments, fragment_files,
                           functools.partial(make, prefix), req.verbose,
                           None if req.clean else previous_record)
        kind = progress.kind(fresh, scope)
        estimate = progress.previous(history, kind)
        env = cache.env() if cache else {}
        label = f"building {plan.defconfig if scope == 'all' else Path(goals[0]).name}"
        result = make_runner.run(make(prefix, *goals), src, log, label, req.verbose, estimate, env)
        if result.returncode != 0 and cache and ccache_mod.failed(result.errors + result.tail):
            say("ccache failed (see the lines above in the log); building again without it")
            cache, prefix, env = None, toolchain.prefix, {}
            result = make_runner.run(make(prefix, *goals), src, log, label, req.verbose,
                                     estimate)
        if (result.returncode != 0 and scope == "target"
                and kbuild.unknown_goal(result.errors + result.tail, goals[0])):
            say(f"this tree's Kbuild cannot make {goals[0]} on its own; building every image")
            goals, scope = [], "all"
            result = make_runner.run(make(prefix), src, log, f"building {plan.defconfig}",
                                     req.verbose, None, env)
        if result.returncode != 0:
            _fail(result, log)
        seconds = time.monotonic() - started
        images = kbuild.images(out)
        image = kbuild.target_image(out, plan.target.image) if plan.target else None
        if image and image.is_file() and image not in images:
            images.append(image)
        record = buildrecord.BuildRecord(
            target=plan.name, arch=plan.arch, defconfig=plan.defconfig, kconfig=fragments,
            toolchain=toolchain.prefix, toolchain_source=toolchain.source,
            gcc=toolchain.info.machine, gcc_version=toolchain.info.version,
            ccache=cache is not None, src=src, scope=scope, goals=goals or ["all"],
            image=image if image and image.is_file() else None, images=images,
            seconds=round(seconds, 1),
            progress=progress.remember(history, progress.kind(fresh, scope), result.steps,
                                       result.seconds))
        buildrecord.write_record(out, record, req.index)
    return BuildResult(out, image, images, seconds, scope, record)


def find_toolchain(src: Path, arch: str, defconfig: str) -> Toolchain:
    """The compiler `bbv build --arch ARCH --defconfig DEFCONFIG` would use (BbvError if none)."""
    catalog = load_catalog()
    plan = kbuild.plan(src, catalog, None, arch, defconfig)
    bits = kbuild.defconfig_bits(src, plan.arch, plan.defconfig)
    return Finder.default().find(_toolchain_target(catalog, plan, bits), plan.defconfig, None)


def toolchain_package(src: Path, arch: str, defconfig: str) -> str:
    """The key of configs/doctor/packages.toml's [toolchains] for this defconfig's compiler."""
    catalog = load_catalog()
    plan = kbuild.plan(src, catalog, None, arch, defconfig)
    target = _toolchain_target(catalog, plan, kbuild.defconfig_bits(src, plan.arch,
                                                                    plan.defconfig))
    return target.gcc_machine[0] if target.gcc_machine and target.gcc_machine[0] != "*" \
        else arch


def _ccache(no_ccache: bool) -> ccache_mod.Ccache | None:
    if not ccache_mod.wanted(no_ccache, userconfig.load()):
        return None
    found, why = ccache_mod.find(os.environ, cache_dir())
    if why:
        say(f"{why}; building without ccache")
    return found


def _built_without_ccache(record: buildrecord.BuildRecord | None) -> bool:
    """A finished build whose objects were compiled without ccache."""
    return record is not None and record.complete and not record.ccache


def _goals(src: Path, plan: kbuild.Plan, all_images: bool | None,
           named: Target | None) -> tuple[list[str], str]:
    """Only the target's image when a target was named (not a defconfig), unless --all-images."""
    if all_images or plan.target is None or (all_images is None and named is None):
        return [], "all"
    goals, why = kbuild.image_goals(src, plan.arch, plan.target.image)
    if not goals:
        say(f"{why}: building every image, not only {plan.target.image}")
        return [], "all"
    return goals, "target"


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
        check_not_busy(out)
        raise UsageError(f"build directory {out} holds other files and is not a barebox build "
                         "directory; give a new or empty --build-dir")
    return out


def _fragments(plan: kbuild.Plan, src: Path, given: tuple[str, ...], target_tools: bool,
               exact: bool = False) -> tuple[list[str], list[Path | str]]:
    """bbv's and the target's fragments (skipped if this tree lacks the file), then the user's;
    exact: the user's only."""
    ours = [] if exact else own_fragments(plan.target, target_tools)
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


def _check_user_fragments(src: Path, plan: kbuild.Plan, items: list[Path | str]) -> None:
    """--kconfig-add fits the ARCH: not a file of another arch/, no symbol only another
    arch's Kconfig defines."""
    settings: dict[str, str] = {}
    for item in items:
        if isinstance(item, str):
            settings.update(kbuild.parse_config(item))
            continue
        parts = item.relative_to(src).parts if item.is_relative_to(src) else ()
        if len(parts) > 2 and parts[0] == "arch" and parts[1] != plan.arch:
            raise UsageError(f"--kconfig-add {item}: a fragment of arch/{parts[1]}, and "
                             f"{plan.name} is ARCH={plan.arch}")
        settings.update(kbuild.parse_config(item.read_text(errors="replace")))
    foreign = kbuild.foreign_symbols(src, plan.arch, settings)
    if foreign:
        named = ", ".join(f"{k} (ARCH={a})" for k, a in sorted(foreign.items()))
        raise UsageError(f"--kconfig-add sets {named}, which only another ARCH's Kconfig "
                         f"defines; {plan.name} is ARCH={plan.arch}")


def _check_build_dir(src: Path, out: Path, plan: kbuild.Plan, catalog: Catalog) -> None:
    """Before anything is written: the build directory holds a build of the same ARCH, and
    its .config and record agree (else Kbuild mixes two arches and fails, or worse)."""
    record = buildrecord.read_record(out) or buildrecord.BuildRecord()
    named = catalog.targets.get(record.target)
    recorded = record.arch or (named.arch if named else None)
    try:
        text = (out / ".config").read_text(errors="replace")
    except OSError:
        text = ""
    arches = sorted({p.name for p in (src / "arch").iterdir() if p.is_dir()})
    configured = kbuild.config_arch(text, arches) if text else None
    what = ", ".join(v for v in (record.target, record.defconfig) if v)
    if configured and recorded and configured != recorded:
        raise BbvError(f"{out}: its .config is ARCH={configured}, but {buildrecord.RECORD_NAME} "
                       f"records ARCH={recorded} ({what}); repair it with: "
                       f"{_repair_command(src, out, record, named)}")
    present = configured or recorded
    if present and present != plan.arch:
        raise UsageError(f"build directory {out} holds an ARCH={present} build"
                         f"{f' ({what})' if what else ''}; building ARCH={plan.arch} "
                         f"({plan.defconfig}) there would mix both: add --clean to start it "
                         "over, or give another -O DIR")


def _repair_command(src: Path, out: Path, record: buildrecord.BuildRecord,
                    named: Target | None) -> str:
    import shlex

    argv = ["bbv", "build", record.target or "TARGET"]
    defconfig = record.defconfig
    if defconfig and defconfig != record.target and not (named and
                                                         defconfig in named.defconfigs):
        argv += ["--defconfig", defconfig]
    argv += [a for k in record.kconfig if k not in own_fragments(named, False)
             for a in ("--kconfig-add", k)]
    return shlex.join([*argv, "--src", str(src), "-O", str(out), "--clean"])


def own_fragments(target: Target | None, target_tools: bool) -> list[str]:
    return ([] if target_tools else [DISABLE_TARGET_TOOLS]) + (target.kconfig if target else [])


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
               files: list[Path | str], make: Callable[..., list[str]], verbose: bool,
               record: buildrecord.BuildRecord | None) -> bool:
    """Configure unless .config is there from the same defconfig and fragments; True if it
    configured (the build then compiles everything)."""
    same = (record is not None and record.defconfig == plan.defconfig
            and record.arch == plan.arch and record.kconfig == fragments)
    if (out / ".config").is_file() and same:
        say(f"incremental build in {out} (keeping its .config; --clean for a fresh one)")
        return False
    say(f"configuring in {out}")
    log = out / make_runner.LOG_NAME
    _step(make_runner.run(make(plan.defconfig), src, log, f"make {plan.defconfig}", verbose),
          log)
    if not files:
        return True
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
    for line in kbuild.config_report(fragments, took, missed):
        say(line)
    return True


def _step(result, log: Path) -> None:
    if result.returncode != 0:
        _fail(result, log)


def _fail(result, log: Path) -> None:
    lines = result.errors or result.tail[-5:]
    for line in lines:
        say(line, prefix="  ")
    raise BuildFailed(f"make failed (exit status {result.returncode}) after "
                      f"{result.seconds:.0f} s; full output in {log}", list(lines), log)


def print_summary(result: BuildResult) -> None:
    """The target's image (highlighted), what else the build made, the time and the record."""
    image, out = result.image, result.build_dir
    if image is not None and image.is_file():
        markup(f"[bold green]{image}[/]  {_size(image)}  (the target's image)")
    elif image is not None:
        markup(f"[bold red]{image.name} was not built[/]: this defconfig does not "
                      "produce the target's image")
    others = [p for p in result.images if p != image]
    if result.scope == "target":
        stale = f"; the {_count(others)} also in images/ are older" if others else ""
        markup(f"built only the target's image (--all-images builds every image of "
                      f"the defconfig{stale})")
    elif image is not None:
        if others:
            markup(f"and {_count(others)} in {out / 'images'}")
    else:  # a defconfig no target boots: show what it made
        for p in others[:12]:
            markup(f"{p}  {_size(p)}")
        if len(others) > 12:
            markup(f"... and {len(others) - 12} more in {out / 'images'}")
    markup(f"built in {result.seconds:.1f} s; recorded in "
                  f"{out / buildrecord.RECORD_NAME}")


def _count(others: list[Path]) -> str:
    return f"{len(others)} other image{'s' if len(others) != 1 else ''}"


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1024:.0f} KiB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MiB"


# --- bbv run --build ---------------------------------------------------------------------------

def build_for_run(target_name: str | None, arch: str | None, image: str | None,
                  build_first: bool, src: Path | None, build_dir: Path | None,
                  no_ccache: bool) -> Path:
    """`bbv run --build`: check the options, rebuild, and return the image to boot."""
    if not build_first:
        given = "--src" if src else "-O/--build-dir"
        raise UsageError(f"{given} belongs to --build (rebuild before booting); add --build")
    if image:
        raise UsageError("--image and --build exclude each other: --build boots what it builds")
    target = load_catalog().resolve(target_name, arch)
    return rebuild(target, src, build_dir, no_ccache)


def rebuild(target: Target, src: Path | None, build_dir: Path | None,
            no_ccache: bool = False, verbose: bool = False) -> Path:
    """Rebuild the target's image incrementally where it was built last (or in --src/-O) and
    return it; the recorded defconfig, fragments and compiler are kept."""
    out, record = _run_build_dir(target, src, build_dir)
    if src is None:
        src = record.src if record and record.src else _cwd_tree(target)
    same = record if record is not None and record.target == target.name else None
    given = [k for k in (same.kconfig if same else [])
             if k not in own_fragments(target, False) and k != DISABLE_TARGET_TOOLS]
    req = BuildRequest(
        target.name, src=src, build_dir=out,
        defconfig=(same.defconfig or None) if same else None,
        kconfig_add=tuple(given),
        target_tools=same is not None and DISABLE_TARGET_TOOLS not in same.kconfig,
        cross_compile=(same.toolchain or None) if same else None,
        cross_compile_source="the last build's record",
        all_images=False, no_ccache=no_ccache, verbose=verbose)
    result = build(req)
    if result.image is None or not result.image.is_file():
        raise BbvError(f"the build in {result.build_dir} made no {target.image}")
    say(f"built {result.image.name} in {result.seconds:.1f} s")
    return result.image


def _run_build_dir(target: Target, src: Path | None, build_dir: Path | None
                   ) -> tuple[Path | None, buildrecord.BuildRecord | None]:
    """Where to rebuild: -O, else the recorded build of the target (in --src if given)."""
    if build_dir is not None:
        return build_dir.resolve(), buildrecord.read_record(build_dir)
    if src is not None:
        out = buildrecord.default_build_dir(src.resolve(), target.name)
        recorded = buildrecord.recorded_dir(target.name)
        if recorded is not None:
            record = buildrecord.read_record(recorded)
            if record is not None and record.src == src.resolve():
                out = recorded
        return out, buildrecord.read_record(out)
    for candidate in buildrecord.candidate_build_dirs(target.name, Path.cwd()):
        record = buildrecord.read_record(candidate)
        if record and record.target == target.name and record.src:
            return candidate.resolve(), record
    return None, None


def _cwd_tree(target: Target) -> Path:
    cwd = Path.cwd()
    if kbuild.is_barebox_tree(cwd):
        return cwd
    raise UsageError(f"--build: no recorded build of target '{target.name}' and {cwd} is not a "
                     f"barebox source tree; run 'bbv build {target.name}' in one, or pass "
                     "--src DIR")
