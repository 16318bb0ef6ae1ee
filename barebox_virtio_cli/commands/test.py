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
@click.argument("names", nargs=-1, metavar="[TARGET|JOB]...")
@click.option("--ci", is_flag=True,
              help="barebox's CI matrix as the tree's .github/workflows/test-labgrid-pytest.yml "
                   "defines it: JOB is a matrix entry's defconfig (none: every job).")
@click.option("--list", "list_only", is_flag=True,
              help="With --ci: print the matrix (jobs, envs, fragments) and what this host "
                   "lacks to run each env; build and run nothing.")
@click.option("-O", "--build-dir", "build_base", type=click.Path(path_type=Path, file_okay=False),
              help="With --ci: put each job's build in DIR/build-ARCH-DEFCONFIG [default: "
                   "SRC/build-ci-ARCH-DEFCONFIG].")
@click.option("--all", "all_targets", is_flag=True,
              help="Every catalog target this tree has a defconfig for and this host can boot.")
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree [default: current directory].")
@click.option("--no-build", is_flag=True, help="Test what is built in SRC/build-TARGET.")
@click.option("--devel", is_flag=True,
              help="Merge common/boards/configs/devel.config into the build (MAKEALL -d).")
@click.option("--kconfig-add", "kconfig_add", multiple=True, metavar="FILE|CONFIG_X=y",
              help="Config fragment merged into each build, as in 'bbv build' (repeatable).")
@click.option("--full", is_flag=True,
              help="More of the suite than barebox's CI runs: merge what its skipped tests ask "
                   "for (configs/suite/full.toml, checked against the tree's Kconfig) and give "
                   "each target the network and framebuffer it can carry.")
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
def test(ctx: click.Context, names: tuple[str, ...], ci: bool, list_only: bool,
         build_base: Path | None, all_targets: bool, src: Path | None,
         no_build: bool, devel: bool, kconfig_add: tuple[str, ...], full: bool,
         keyword: str | None,
         jobs: int, make_jobs: int | None, as_json: bool, junit_dir: Path | None,
         **devices) -> None:
    """Build each TARGET and run barebox's own test suite (test/py) on it under labgrid.

    The device options are those of 'bbv run'. Arguments after -- go to pytest (and barebox's
    conftest), e.g. -- -x --bootarg X.

    With --ci, run barebox's own CI jobs instead: each JOB's defconfig built once with the
    fragments CI merges, then test/py on every env (yaml) of the job this host can run, with
    barebox's own yaml and the job's lgargs.

    \b
    Examples, in a barebox source tree:
      bbv test vexpress armv8 malta riscv64
      bbv test --all -j 2 --json
      bbv test vexpress --blk disk.img --rng -k shell -- -x
      bbv test vexpress --full
      bbv test --ci --list
      bbv test --ci multi_v7_defconfig -j 2 --junit-dir results
    """
    if ci or list_only or build_base is not None:
        _ci(ctx, names, list_only, build_base, src, all_targets=all_targets, devel=devel,
            kconfig_add=kconfig_add, no_build=no_build, keyword=keyword, jobs=jobs,
            make_jobs=make_jobs, as_json=as_json, junit_dir=junit_dir, ci=ci, devices=devices,
            full=full)
        return
    from barebox_virtio_cli.run.request import RunRequest
    from barebox_virtio_cli.testsuite import results, runner
    from barebox_virtio_cli.testsuite.request import make_request

    request = make_request(
        (src or Path.cwd()).resolve(), names, all_targets, devices=RunRequest(**devices),
        build=not no_build, kconfig=results.fragments(devel, list(kconfig_add)), full=full,
        keyword=keyword, jobs=jobs, make_jobs=make_jobs, junit_dir=junit_dir,
        pytest_args=ctx.meta.get("pytest_args", []))
    outcome = runner.run(request, live=sys.stderr.isatty() and not as_json)
    if as_json:
        click.echo(json.dumps(results.to_json(outcome), indent=2))
    else:
        _report(outcome, every_skip=full)
    sys.exit(results.exit_status(outcome))


def _report(outcome, every_skip: bool = False) -> None:
    from rich.table import Table

    from barebox_virtio_cli.testsuite import results as plan
    from barebox_virtio_cli.util.output import stdout_console

    console = stdout_console()
    console.soft_wrap = True
    table = Table(title="barebox test suite (test/py)")
    for column in ("target", "build", "passed", "failed", "skipped", "xfailed", "errors", "wall"):
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
    if count and every_skip:
        console.print(f"{count} skipped:")
        for target, name, reason in plan.skips(outcome):
            console.print(f"  {target}: {name} - {reason}", markup=False)
    elif count:
        common = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        console.print(f"{count} skipped; most common: {common}", markup=False)


def _ci(ctx: click.Context, names: tuple[str, ...], list_only: bool, build_base: Path | None,
        src: Path | None, **options) -> None:
    """bbv test --ci [JOB]...: barebox's CI matrix from the tree's workflow."""
    from barebox_virtio_cli.ci import matrix, runner
    from barebox_virtio_cli.ci import results as ci_results
    from barebox_virtio_cli.errors import UsageError
    from barebox_virtio_cli.run.request import RunRequest
    from barebox_virtio_cli.testsuite.request import check_keyword

    if not options["ci"]:
        raise UsageError(f"{'--list' if list_only else '-O/--build-dir'} belongs to --ci; "
                         "add --ci")
    given = [flag for flag, on in (("--all", options["all_targets"]),
                                   ("--devel", options["devel"]),
                                   ("--kconfig-add", options["kconfig_add"]),
                                   ("device options", RunRequest(**options["devices"])
                                    != RunRequest())) if on]
    if given:
        raise UsageError(f"--ci runs the jobs as barebox's CI does; {given[0]} does not go "
                         "with it")
    check_keyword(options["keyword"])
    plan = matrix.load((src or Path.cwd()).resolve(), list(names), given=src is not None)
    if list_only:
        _print_matrix(plan, options["as_json"])
        return
    ci_options = runner.CiOptions(
        build_base=build_base.resolve() if build_base else None, jobs=options["jobs"],
        make_jobs=options["make_jobs"], junit_dir=options["junit_dir"],
        keyword=options["keyword"], pytest_args=ctx.meta.get("pytest_args", []),
        build=not options["no_build"])
    outcome = runner.run_jobs(plan, ci_options, named=bool(names), full=options["full"],
                              live=sys.stderr.isatty() and not options["as_json"])
    if options["as_json"]:
        click.echo(json.dumps(ci_results.to_json(outcome), indent=2))
    else:
        _ci_report(outcome)
    sys.exit(ci_results.exit_status(outcome))


def _ci_report(outcome) -> None:
    from rich.table import Table

    from barebox_virtio_cli.ci import results as ci_results
    from barebox_virtio_cli.util.output import stdout_console

    console = stdout_console()
    console.soft_wrap = True
    table = Table(title="barebox CI jobs (test-labgrid-pytest.yml)")
    for column in ci_results.COLUMNS:
        table.add_column(column, justify="left" if column in ("job", "env") else "right")
    for row in ci_results.table_rows(outcome):
        table.add_row(*row)
    console.print(table)
    for env, name, reason, log in ci_results.problems(outcome):
        console.print(f"  {env}: {name}" + (f" - {reason}" if reason else "")
                      + (f" (log: {log})" if log else ""), markup=False)


def _print_matrix(plan, as_json: bool) -> None:
    from barebox_virtio_cli.ci import matrix
    from barebox_virtio_cli.ci.workflow import describe_rules
    from barebox_virtio_cli.util.output import stdout_console

    if as_json:
        click.echo(json.dumps(matrix.to_json(plan), indent=2))
        return
    from rich.table import Table

    console = stdout_console()
    console.soft_wrap = True
    table = Table(title=f"barebox CI matrix ({plan.src}/.github/workflows/"
                        "test-labgrid-pytest.yml)")
    for column in ("job", "ARCH", "env", "runs here", "missing (Debian package)"):
        table.add_column(column)
    for j in plan.jobs:
        extra = "".join(f" {k}={v}" for k, v in (("lgargs", j.job.lgargs),
                                                  ("osimg", j.job.osimg)) if v)
        for i, e in enumerate(j.envs or [None]):
            missing = j.missing.get(e.name, []) if e else []
            table.add_row(j.job.defconfig + extra if i == 0 else "", j.job.arch if i == 0
                          else "", e.name if e else f"(no yaml for {j.job.lgenv})",
                          "[red]no[/]" if missing or not e else "[green]yes[/]",
                          "; ".join(map(str, missing)))
    console.print(table)
    console.print(f"fragments (KCONFIG_ADD): {describe_rules(plan.workflow)}", markup=False)
    for j in plan.jobs:
        if j.not_tested:
            console.print(f"{j.job.defconfig}: CI skips {', '.join(j.not_tested)} (no "
                          f"{' or '.join(plan.workflow.drivers)})", markup=False)
    for step in plan.workflow.steps_not_followed:
        what = step if step.startswith("Build: ") else f"step '{step}'"
        console.print(f"not reproduced: the workflow's {what}", markup=False)
    for note in plan.workflow.notes:
        console.print(f"note: {note}", markup=False)
