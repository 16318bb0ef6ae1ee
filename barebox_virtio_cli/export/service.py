"""`bbv export` as a service: the setup a RunRequest would boot (checked as `bbv run` checks
it) turned into the text of a labgrid environment or a LAVA job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.export.features import for_env
from barebox_virtio_cli.export.jobs import (
    check_job_name,
    labgrid_env,
    lava_job,
    lava_warnings,
    to_yaml,
)
from barebox_virtio_cli.export.output import STDOUT, destinations
from barebox_virtio_cli.qemu.args import build_command
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.run.service import prepare
from barebox_virtio_cli.util.atomic import make_dirs, write_text
from barebox_virtio_cli.util.status import say

# Options that name one target's files or CPU, so they cannot go with several -t.
ONE_TARGET_ONLY = ("image", "firmware", "cpu", "machine", "arch")


def per_target(request: RunRequest, targets: tuple[str, ...]) -> list[RunRequest]:
    """One request per -t (or the one --arch/default target when none is given)."""
    names = list(dict.fromkeys(targets)) or [request.target]
    if len(names) > 1:
        given = [f"--{k}" for k in ONE_TARGET_ONLY if getattr(request, k)]
        if given:
            raise UsageError(f"{', '.join(given)} belong{'s' if len(given) == 1 else ''} to "
                             "one target; with several -t each uses its own defaults")
    return [request.replace(target=name) for name in names]


def write(output: str | None, force: bool, files: list[tuple[str, str]]) -> list[str]:
    """(target name, text) pairs to -o (see export/output.py); the texts for standard output."""
    printed = []
    names = [name for name, _ in files]
    for dest, (_, text) in zip(destinations(output, names, force), files, strict=True):
        if dest == STDOUT:
            printed.append(text)
            continue
        make_dirs(Path(dest).parent, "-o")
        write_text(Path(dest), text)
        say(f"wrote {dest}")
    return printed


def labgrid_file(request: RunRequest, barebox_src: Path | None,
                 no_strategy: bool, more_features: tuple[str, ...] = ()) -> tuple[str, str]:
    """(target name, labgrid environment); more_features (bbv test --full) are declared
    besides those of barebox's files."""
    target, info, spec = prepare(request, check_locks=False)
    groups = build_command(target, spec, info)
    strategy = None if no_strategy else _strategy(barebox_src)
    declared = None
    if strategy is not None:
        declared = for_env(target, strategy.parent.parent, spec.image, Path(info.binary).name,
                           spec.machine or target.machine)
        declared.features = list(dict.fromkeys([*declared.features, *more_features]))
        say(f"features: {', '.join(declared.features)} (from {declared.source})")
        if declared.dropped:
            say(f"features left out (bbv cannot provide them): {', '.join(declared.dropped)}")
    env = labgrid_env(target, spec, groups, info.binary, strategy,
                      declared and declared.features, declared and declared.devices)
    return target.name, to_yaml(env, f"labgrid environment for bbv target '{target.name}', "
                                     "written by 'bbv export labgrid'")


def _strategy(barebox_src: Path | None) -> Path:
    src = barebox_src or Path.cwd()
    strategy = src / "test" / "strategy.py"
    if not strategy.is_file():
        where = f"--barebox-src {src}" if barebox_src else f"the current directory ({src})"
        raise UsageError(f"{where} is not a barebox source tree (no test/strategy.py); run in "
                         "one, pass --barebox-src DIR, or --no-strategy for a plain labgrid file")
    return strategy.resolve()


def lava_file(request: RunRequest, job_name: str | None, commands: list[str],
              job_timeout: int, expectations: list[str] = ()) -> tuple[str, str]:
    """(target name, LAVA job); job_name None: 'bbv TARGET'."""
    name, job = lava_definition(request, job_name, commands, job_timeout,
                                expectations=expectations)
    return name, to_yaml(job, f"LAVA job for bbv target '{name}', written by 'bbv export "
                              "lava'; image URLs are file:// paths on this machine")


def lava_definition(request: RunRequest, job_name: str | None, commands: list[str],
                    job_timeout: int, url: Callable[[str, Path], str] | None = None,
                    expectations: list[str] = ()) -> tuple[str, dict]:
    """(target name, LAVA job as data), the warnings said; url(target name, file) gives each
    image file's URL (default: file:// URLs, see export.jobs.lava_job)."""
    if job_name is not None:
        check_job_name(job_name)
    target, info, spec = prepare(request, check_locks=False)
    groups = build_command(target, spec, info)
    extra = {"url": lambda path: url(target.name, path)} if url else {}
    job = lava_job(target, spec, groups, job_name or f"bbv {target.name}", commands,
                   job_timeout, expectations=list(expectations), **extra)
    for warning in lava_warnings(target, spec):
        say(f"warning: {warning}")
    return target.name, job
