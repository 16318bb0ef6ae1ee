"""What `bbv test` is asked to do, checked up front (the tree, labgrid, the targets, -k, the
device options) so that a mistake is one line before any build or boot."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.build.kbuild import check_tree as check_barebox_tree
from barebox_virtio_cli.build.kbuild import defconfigs, defined_symbols
from barebox_virtio_cli.doctor.checks import TargetFacts, target_checks
from barebox_virtio_cli.doctor.host import packages, probe_qemu, suite_facts, suite_requirements
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.run import inputs
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.testsuite.full import (
    FullSet,
    for_arch,
    full_build,
    full_env,
    parse_full,
)
from barebox_virtio_cli.testsuite.requirements import Unmet, unmet
from barebox_virtio_cli.util.paths import builtin_configs_dir
from barebox_virtio_cli.util.status import say
from barebox_virtio_cli.util.tomlfile import read_toml

SUITE = "test/py"


@dataclass
class SuiteRequest:
    src: Path
    targets: list[Target]
    build: bool = True
    kconfig: list[str] = field(default_factory=list)  # fragments merged into the builds
    keyword: str | None = None
    jobs: int = 1
    make_jobs: int | None = None
    junit_dir: Path | None = None
    devices: RunRequest = field(default_factory=RunRequest)  # bbv run's device options
    pytest_args: list[str] = field(default_factory=list)
    full: FullSet | None = None  # --full: the features and devices each target gets


def make_request(src: Path, names: tuple[str, ...], all_targets: bool,
                 devices: RunRequest | None = None, full: bool = False,
                 **options) -> SuiteRequest:
    """Check the tree, labgrid and the targets up front; one line for what is wrong."""
    if all_targets and names:
        raise UsageError("give target names or --all, not both")
    if not all_targets and not names:
        raise UsageError("say which targets to test (see 'bbv targets'), or --all")
    check_keyword(options.get("keyword"))
    devices = devices or RunRequest()
    check_devices(devices)
    catalog = load_catalog()
    targets = [catalog.get(n) for n in dict.fromkeys(names)]
    check_tree(src)
    check_labgrid()
    for missing in host_requirements(src):
        say(f"warning: {missing.warning()}")
    if all_targets:
        targets = _testable(list(catalog.targets.values()), src)
    for target in [] if all_targets else targets:
        problem = boot_problem(target)
        if problem:
            raise BbvError(f"this host cannot boot target '{target.name}': {problem}; "
                           f"'bbv doctor {target.name}' lists what to install")
    if len(targets) > 1 and devices.console:
        raise UsageError(f"--console {devices.console} is one socket; with several targets "
                         "give --console without a path (one socket per target)")
    if options.get("jobs", 1) > 1 and len(targets) > 1 and devices.blk:
        devices = devices.replace(snapshot=True)  # runs at the same time share the images
    if options.get("junit_dir") is not None:
        options["junit_dir"] = output_dir(options["junit_dir"], "--junit-dir")
    if full:
        options["full"] = load_full()
        options["kconfig"] = [*full_kconfig(src, options["full"]), *options.get("kconfig", [])]
        for target in targets:
            _, dropped = for_arch(options["full"], options["kconfig"], target.arch)
            for note in [*dropped, *full_env(options["full"], target.full_extras,
                                             target.name).notes]:
                say(f"--full: {note}" if note.startswith(f"{target.name}:")
                    else f"--full: {target.name}: {note}")
    return SuiteRequest(src=src, targets=targets, devices=devices, **options)


def load_full() -> FullSet:
    """configs/suite/full.toml: what --full gives back to the suite."""
    path = builtin_configs_dir() / "suite" / "full.toml"
    return parse_full(read_toml(path, "--full's groups"), str(path))


def full_kconfig(src: Path, full: FullSet) -> list[str]:
    """--full's fragment for this tree: the tree's CI fragments it has, and the options its
    Kconfig defines; what is dropped is said."""
    merged = full_build(full, defined_symbols(src), lambda path: (src / path).is_file())
    for note in merged.notes:
        say(f"--full: {note}")
    return merged.kconfig


def _testable(targets: list[Target], src: Path) -> list[Target]:
    """--all: the targets the tree has a defconfig for and this host can boot; others named."""
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


def output_dir(path: Path, option: str) -> Path:
    """An output directory (--junit-dir) that can be made; one line if it cannot be. It is
    not made here: pytest makes it when it writes a report, so a run that fails before any
    test leaves nothing behind."""
    import errno

    path = path.resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        reason = errno.ENOTDIR
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = errno.EACCES
    else:
        return path
    raise UsageError(f"{option} {path}: {os.strerror(reason)} ({existing})")


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


def check_devices(devices: RunRequest) -> None:
    """The device options checked as `bbv run` checks them (run/inputs.py), here before the
    tree, labgrid and the builds rather than in each target's export."""
    for blk in devices.blk:
        inputs.check_block_image(Path(blk), devices.snapshot, check_locks=False)
    for index, share in enumerate(devices.fs):
        inputs.parse_fs(share, index)
    for entry in devices.env:
        inputs.parse_env(entry)
    for forward in devices.port_forward:
        inputs.port_forward(forward, check_free=False)


def check_tree(src: Path) -> None:
    check_barebox_tree(src)
    if not (src / SUITE).is_dir() or not (src / "conftest.py").is_file():
        raise UsageError(f"{src} has no test suite ({SUITE} and conftest.py); barebox's labgrid "
                         "tests came with newer releases, so use a newer tree")


def check_labgrid() -> None:
    if importlib.util.find_spec("labgrid") is None or importlib.util.find_spec("pytest") is None:
        raise BbvError("barebox's test suite runs under labgrid's pytest plugin, which is not "
                       "installed for this Python; pip install 'bbv[labgrid]'")


def host_requirements(src: Path, offers: Callable[[str], bool] | None = None) -> list[Unmet]:
    """What the host lacks that the tree's test suite uses (configs/suite/requirements.toml),
    each with the tests of the tree that go without it (offers: see requirements.unmet)."""
    reqs = suite_requirements()
    sources: dict[str, str | None] = {}
    for path in {t.partition("::")[0] for r in reqs for t in r.tests}:
        try:
            sources[path] = (src / path).read_text(errors="replace")
        except OSError:
            sources[path] = None
    return unmet(reqs, suite_facts(reqs), sources, offers)


def boot_problem(target: Target) -> str | None:
    """Why this host cannot boot the target (doctor's boot checks), or None."""
    pkgs = packages()
    facts = TargetFacts(**probe_qemu(target), toolchain="not checked")
    for check in target_checks(target, facts, pkgs):
        if check.needed_for == "boot" and not check.ok:
            return f"{check.item}: {check.detail}"
    return None
