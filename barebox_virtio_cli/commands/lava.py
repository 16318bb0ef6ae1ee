"""bbv lava submit|wait: bbv's scripted checks as jobs on a LAVA farm, watched to the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number, targets_options

PRIORITIES = ("high", "medium", "low")


def _server_options(func):
    for option in reversed([
        click.option("-i", "--identity", envvar="BBV_LAVA_IDENTITY", metavar="NAME",
                     help="Identity from lavacli's identities file (lavacli.yaml) [default: "
                          "its 'default'; env BBV_LAVA_IDENTITY]."),
        click.option("--url", envvar="BBV_LAVA_URL", metavar="URL",
                     help="LAVA server URL instead of an identity [env BBV_LAVA_URL]."),
        click.option("--token", envvar="BBV_LAVA_TOKEN", metavar="TOKEN",
                     help="API token (never printed) [env BBV_LAVA_TOKEN]."),
        click.option("--timeout", type=Number.seconds(0, exclusive_min=True),
                     metavar="S", help="Give up after S seconds and cancel the unfinished "
                                       "jobs."),
        click.option("-v", "--verbose", is_flag=True, help="Show the job logs as they come."),
        click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
        click.option("--junit-dir", metavar="DIR",
                     type=click.Path(file_okay=False, path_type=Path),
                     help="Write LAVA's JUnit of each job to DIR/ID-NAME.xml."),
    ]):
        func = option(func)
    return func


def _priority(ctx, param, value: str | None) -> str | None:
    if value is None or value in PRIORITIES or (value.isdigit() and int(value) <= 100):
        return value
    raise click.BadParameter(f"'{value}': give high, medium, low or 0 to 100", ctx, param)


def _tags(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    if any(not value.strip() for value in values):
        raise click.BadParameter("an empty tag; give a tag's name (see the devices' tags in "
                                 "LAVA's web UI)", ctx, param)
    return values


@click.group()
def lava() -> None:
    """Run bbv's checks as jobs on a LAVA farm and collect the results."""


@lava.command(short_help="Submit bbv's jobs (or job files) to a LAVA server and wait.")
@click.argument("job_files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@lambda func: targets_options(func, each="job")
@click.option("--exec", "commands", multiple=True, metavar="CMD",
              help="barebox command to run after boot as a test case (repeatable).")
@click.option("--expect", "expectations", multiple=True, metavar="REGEX",
              help="Must match the --exec output (the boot log without --exec): a test case "
                   "(repeatable).")
@click.option("--job-name", metavar="NAME", help="Job name (default: bbv <target>).")
@click.option("--job-timeout", type=Number(int, 1, maximum=24 * 60, unit="minutes"),
              default=10, show_default=True, metavar="MINUTES", help="LAVA's job timeout.")
@click.option("--device-type", metavar="TYPE", help="Device type of every job [qemu].")
@click.option("--tags", multiple=True, callback=_tags, metavar="TAG",
              help="Device tag the jobs need (repeatable).")
@click.option("--priority", callback=_priority, metavar="P",
              help="high, medium, low or 0-100 [medium].")
@click.option("--artifact-url", metavar="BASE",
              help="Workers fetch each image from BASE/NAME ({target} in BASE: the target).")
@click.option("--serve", metavar="HOST:PORT",
              help="Serve the images from this machine while the jobs run (the workers "
                   "must reach HOST:PORT).")
@click.option("--no-wait", is_flag=True, help="Print the job ids and return; see 'bbv lava "
                                              "wait'.")
@_server_options
def submit(job_files: tuple[Path, ...], targets: tuple[str, ...], commands: tuple[str, ...],
           expectations: tuple[str, ...], job_name: str | None, job_timeout: int,
           device_type: str | None,
           tags: tuple[str, ...], priority: str | None, artifact_url: str | None,
           serve: str | None, no_wait: bool, identity: str | None, url: str | None,
           token: str | None, timeout: float | None, verbose: bool, as_json: bool,
           junit_dir: Path | None, **options) -> None:
    """Submit the jobs 'bbv export lava' makes (one per -t) or JOB_FILES to a LAVA server,
    wait for them and show the results. Exit 0 only when every job completed and every test
    case passed. Ctrl-C, SIGTERM and SIGHUP cancel the jobs.

    \b
    Examples:
      bbv lava submit -i lab -t vexpress -t riscv64 --exec version --expect 'barebox 20' \\
          --serve 192.0.2.10:8000
      bbv lava submit --url https://lava.example --token T job.yaml --junit-dir results
    """
    from barebox_virtio_cli.errors import UsageError
    from barebox_virtio_cli.export.service import per_target
    from barebox_virtio_cli.lava import service
    from barebox_virtio_cli.run.request import RunRequest
    from barebox_virtio_cli.session.options import check_exec
    from barebox_virtio_cli.session.report import compile_patterns

    check_exec(list(commands))
    compile_patterns(list(expectations))
    if job_files and (targets or commands or expectations):
        raise UsageError("JOB_FILES are submitted as they are: give either job files or -t "
                         "targets (with --exec, --expect), not both")
    requests = [] if job_files else per_target(RunRequest(**options), targets)
    server = service.server(identity, url, token)
    request = service.SubmitRequest(
        requests, list(job_files), list(commands), list(expectations), job_name, job_timeout,
        service.Images(artifact_url, serve),
        service.Overrides(device_type, tags, priority), not no_wait, timeout, verbose,
        junit_dir)
    outcome = service.submit(server, request)
    if no_wait:
        if as_json:
            click.echo(json.dumps([{"id": j.id, "name": j.name, "url": j.url}
                                   for j in outcome.jobs], indent=2))
        else:
            click.echo(" ".join(str(job.id) for job in outcome.jobs))
        return
    _render(outcome, as_json)


@lava.command(short_help="Wait for LAVA jobs submitted earlier and show the results.")
@click.argument("ids", nargs=-1, required=True, type=Number(int, 1, unit="job id"))
@_server_options
def wait(ids: tuple[int, ...], identity: str | None, url: str | None, token: str | None,
         timeout: float | None, verbose: bool, as_json: bool, junit_dir: Path | None) -> None:
    """Wait for jobs (e.g. from 'bbv lava submit --no-wait') and show the results; exit 0
    only when every one completed and every test case passed. A signal leaves the jobs
    running; --timeout cancels them.

    \b
    Example:
      bbv lava wait -i lab 1234 1235
    """
    from barebox_virtio_cli.lava import service

    _render(service.wait(service.server(identity, url, token), list(ids), verbose, junit_dir,
                         timeout), as_json)


def _render(outcome, as_json: bool) -> None:
    from barebox_virtio_cli.lava.results import shown
    from barebox_virtio_cli.lava.state import exit_status

    if as_json:
        click.echo(json.dumps({"jobs": [job.to_json() for job in outcome.jobs],
                               "timed_out": outcome.timed_out}, indent=2))
    else:
        from rich.table import Table

        from barebox_virtio_cli.util.output import stdout_console

        table = Table(title="LAVA jobs")
        for column in ("job", "target", "worker", "health", "test cases", "duration"):
            table.add_column(column)
        for job in outcome.jobs:
            cases = "\n".join(f"{c.name}: {c.result}" for c in shown(job.cases)) or "-"
            took = f"{job.duration:.1f} s" if job.duration is not None else "-"
            table.add_row(f"{job.id} {job.url}", job.name, job.worker or "-",
                          job.health if job.finished else job.state, cases, took)
        stdout_console().print(table)
    sys.exit(exit_status(outcome.jobs))
