"""`bbv export` as a service: the setup a RunRequest would boot (checked as `bbv run` checks
it) turned into the text of a labgrid environment or a LAVA job."""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.export.jobs import (
    LAVA_ARCHES,
    labgrid_env,
    lava_arch,
    lava_job,
    to_yaml,
)
from barebox_virtio_cli.qemu.args import build_command
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.run.service import prepare
from barebox_virtio_cli.util.status import say


def labgrid_file(request: RunRequest, barebox_src: Path | None, no_strategy: bool) -> str:
    target, info, spec = prepare(request)
    groups = build_command(target, spec, info)
    strategy = None if no_strategy else _strategy(barebox_src)
    declared = None
    if strategy is not None:
        from barebox_virtio_cli.export.features import for_env

        declared = for_env(target, strategy.parent.parent, spec.image, Path(info.binary).name,
                           spec.machine or target.machine)
        say(f"features: {', '.join(declared.features)} (from {declared.source})")
        if declared.dropped:
            say(f"features left out (bbv cannot provide them): {', '.join(declared.dropped)}")
    env = labgrid_env(target, spec, groups, info.binary, strategy,
                      declared and declared.features, declared and declared.devices)
    return to_yaml(env, f"labgrid environment for bbv target '{target.name}', written by "
                        "'bbv export labgrid'")


def _strategy(barebox_src: Path | None) -> Path:
    src = barebox_src or Path.cwd()
    strategy = src / "test" / "strategy.py"
    if not strategy.is_file():
        where = f"--barebox-src {src}" if barebox_src else f"the current directory ({src})"
        raise UsageError(f"{where} is not a barebox source tree (no test/strategy.py); run in "
                         "one, pass --barebox-src DIR, or --no-strategy for a plain labgrid file")
    return strategy.resolve()


def lava_file(request: RunRequest, job_name: str | None, commands: list[str],
              job_timeout: int) -> str:
    target, info, spec = prepare(request)
    groups = build_command(target, spec, info)
    job = lava_job(target, spec, groups, job_name or f"bbv {target.name}", commands, job_timeout)
    if lava_arch(target) not in LAVA_ARCHES:
        say(f"warning: LAVA's stock qemu device type has no arch '{lava_arch(target)}'; "
            "the lab's device type must list it")
    return to_yaml(job, f"LAVA job for bbv target '{target.name}', written by "
                        "'bbv export lava'; image URLs are file:// paths on this machine")
