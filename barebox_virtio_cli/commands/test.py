"""bbv test: barebox's own test suite (test/py, labgrid) on each target, built and booted by
bbv. The work is done in barebox_virtio_cli.testsuite; this is options and rendering."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number, device_options


class _SplitAtDashes(click.Command):
    """Everything after `--` goes to pytest, not into the TARGET arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["pytest_args"] = args[at + 1:]
            args = args[:at]
        return super().parse_args(ctx, args)


@click.command(cls=_SplitAtDashes)
@click.argument("names", nargs=-1, metavar="[TARGET]...")
@click.option("--all", "all_targets", is_flag=True,
              help="Every catalog target this tree has a defconfig for and this host can boot.")
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree [default: current directory].")
@click.option("--no-build", is_flag=True, help="Test what is built in SRC/build-TARGET.")
@click.option("--devel", is_flag=True,
              help="Merge common/boards/configs/devel.config into the build (MAKEALL -d).")
@click.option("--kconfig-add", "kconfig_add", multiple=True, metavar="FILE|CONFIG_X=y",
              help="Config fragment merged into each build, as in 'bbv build' (repeatable).")
@click.option("-k", "keyword", metavar="EXPR", help="Only tests matching EXPR (pytest -k).")
@click.option("-j", "--jobs", type=Number(int, 1, maximum=64), default=1, show_default=True,
              help="Test runs of different targets at the same time (builds stay one at a "
                   "time).")
@click.option("--make-jobs", type=Number(int, 1, maximum=4096),
              help="make -j [default: CPU count].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--junit-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Write one JUnit XML file per target, DIR/TARGET.xml.")
@device_options
@click.pass_context
def test(ctx: click.Context, names: tuple[str, ...], all_targets: bool, src: Path | None,
         no_build: bool, devel: bool, kconfig_add: tuple[str, ...], keyword: str | None,
         jobs: int, make_jobs: int | None, as_json: bool, junit_dir: Path | None,
         **devices) -> None:
    """Build each TARGET and run barebox's own test suite (test/py) on it under labgrid.

    The device options are those of 'bbv run'. Arguments after -- go to pytest (and barebox's
    conftest), e.g. -- -x --bootarg X.

    \b
    Examples, in a barebox source tree:
      bbv test vexpress armv8 malta riscv64
      bbv test --all -j 2 --json
      bbv test vexpress --blk disk.img --rng -k shell -- -x
    """
    from barebox_virtio_cli.run.request import RunRequest
    from barebox_virtio_cli.testsuite import results, runner
    from barebox_virtio_cli.testsuite.request import make_request
    from barebox_virtio_cli.util.signals import Signalled
    from barebox_virtio_cli.util.status import say

    request = make_request(
        (src or Path.cwd()).resolve(), names, all_targets, devices=RunRequest(**devices),
        build=not no_build, kconfig=results.fragments(devel, list(kconfig_add)),
        keyword=keyword, jobs=jobs, make_jobs=make_jobs, junit_dir=junit_dir,
        pytest_args=ctx.meta.get("pytest_args", []))
    try:
        outcome = runner.run(request, live=sys.stderr.isatty() and not as_json)
    except Signalled as stopped:
        say(f"stopped by signal {stopped.signum}")
        raise
    if as_json:
        click.echo(json.dumps(results.to_json(outcome), indent=2))
    else:
        _report(outcome)
    sys.exit(results.exit_status(outcome))


def _report(outcome) -> None:
    from rich.table import Table

    from barebox_virtio_cli.testsuite import results as plan
    from barebox_virtio_cli.util.output import stdout_console

    console = stdout_console()
    console.soft_wrap = True
    table = Table(title="barebox test suite (test/py)")
    for column in ("target", "build", "passed", "failed", "skipped", "xfailed", "wall"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in plan.table_rows(outcome):
        table.add_row(*row)
    console.print(table)
    failures = plan.failures(outcome)
    if failures:
        console.print("[bold red]failed:[/]")
    for target, name, reason, log in failures:
        console.print(f"  {target}: {name}" + (f" - {reason}" if reason else "")
                      + (f" (log: {log})" if log else ""), markup=False)
    count, reasons = plan.skip_reasons(outcome)
    if count:
        common = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        console.print(f"{count} skipped; most common: {common}", markup=False)
