"""bbv bisect: the options, one BisectRequest, bisect.service, and the result rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number, booted_image_options, check_options


@click.command()
@click.option("--good", required=True, metavar="REV", help="A commit where the check passes.")
@click.option("--bad", required=True, metavar="REV", help="A later commit where it fails.")
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="The barebox git checkout [default: current directory]; only read.")
@booted_image_options
@check_options
@click.option("--test", "test", metavar="EXPR",
              help="Check with barebox's test suite: the tests pytest -k EXPR selects.")
@click.option("--repeat", type=Number(int, 1, maximum=100), default=1, show_default=True,
              help="Run the check N times per commit; bad if any run fails (flaky failures).")
@click.option("--boot-fail-skip", is_flag=True,
              help="Skip a commit whose boot never reaches the prompt (default: bad).")
@click.option("-j", "--jobs", type=Number(int, 1, maximum=4096),
              help="make -j [default: CPU count].")
@click.option("--no-ccache", is_flag=True, help="Do not compile through ccache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD [ARGS]...]")
def bisect(good: str, bad: str, src: Path | None, test: str | None, repeat: int,
           boot_fail_skip: bool, jobs: int | None, no_ccache: bool, as_json: bool,
           command: tuple[str, ...], **boot) -> None:
    """Find the commit that broke a boot, a command or a test, with git bisect in a tree of
    bbv's own: your checkout, branch, index and stash stay as they are.

    \b
    Each commit is built (incrementally, in one build directory per target kept between runs)
    and checked by one of:
      --exec CMD / --expect REGEX   a scripted boot, judged as 'bbv run' judges it
      --test EXPR                   barebox's test suite, the tests pytest -k EXPR selects
      -- CMD [ARGS]...              any command: 0 good, 125 skip, 1-127 bad; it gets
                                    $BBV_BISECT_IMAGE, $BBV_BISECT_BUILD_DIR, $BBV_BISECT_SRC
    A commit that does not build is skipped. Exit status 0 when the first bad commit was
    found, 1 when not (and why), 2 for usage errors.

    \b
    Examples, in a barebox checkout:
      bbv bisect -t vexpress --good v2026.05.0 --bad HEAD --exec version --expect 2026
      bbv bisect -t riscv64 --good v2026.05.0 --bad HEAD --rng --exec 'ls /dev' \\
          --expect hwrng0 --repeat 3
      bbv bisect -t malta --good HEAD~20 --bad HEAD -- ./check.sh
    """
    from barebox_virtio_cli.bisect import service
    from barebox_virtio_cli.bisect import steps as st
    from barebox_virtio_cli.run.request import RunRequest

    name = boot.pop("target")
    arch = boot.pop("arch")
    request = service.BisectRequest(
        target=_target(name, arch), good=good, bad=bad, src=src,
        boot=RunRequest(**boot), test=test, command=list(command), repeat=repeat,
        boot_fail_skip=boot_fail_skip, no_ccache=no_ccache, jobs=jobs)
    outcome = service.bisect(request)
    if as_json:
        click.echo(json.dumps(st.to_json(outcome), indent=2))
    else:
        _report(outcome)
    sys.exit(st.exit_status(outcome))


def _target(name: str | None, arch: str | None) -> str:
    from barebox_virtio_cli.errors import UsageError
    from barebox_virtio_cli.targets.catalog import load_catalog

    if not name and not arch:
        raise UsageError("say which target to bisect on: -t TARGET ('bbv targets' lists them)")
    return load_catalog().resolve(name, arch).name


def _report(outcome) -> None:
    from rich.markup import escape
    from rich.table import Table

    from barebox_virtio_cli.bisect import steps as st
    from barebox_virtio_cli.util.output import stdout_console

    console = stdout_console()
    console.soft_wrap = True
    table = Table(title=f"bbv bisect on {outcome.target}")
    for column in ("commit", "subject", "result", "build", "check", "note"):
        table.add_column(column, justify="right" if column in ("build", "check") else "left")
    for row in st.table_rows(outcome.steps):
        table.add_row(*map(escape, row))
    console.print(table)
    first = outcome.first_bad
    if first is not None:
        console.print(f"[bold]first bad commit: {first.sha}[/]", highlight=False)
        for label, value in (("subject", first.subject), ("author", first.author),
                             ("date", first.date)):
            console.print(f"  {label}: {escape(value)}", highlight=False)
    else:
        console.print(f"[bold red]no first bad commit found[/]: {escape(outcome.why)}",
                      highlight=False)
    if outcome.log:
        console.print(f"git bisect log: {outcome.log}", highlight=False)
