"""The scripted-boot options of `bbv run` (--exec, --expect, --timeout, --junit, --json) and
what the command does with them. Light at import: `bbv run --dry-run` loads this module."""

from __future__ import annotations

import os
from pathlib import Path

import click

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util.status import say

DEFAULT_TIMEOUT = 30.0


class ScriptOptions:
    """What the scripted-boot options asked for (a plain class: a dataclass costs start-up)."""

    __slots__ = ("commands", "expectations", "timeout", "junit", "json")

    def __init__(self, commands: list[str], expectations: list[str], timeout: float,
                 junit: Path | None, json: bool) -> None:
        self.commands, self.expectations, self.timeout = commands, expectations, timeout
        self.junit, self.json = junit, json


def script_options(func):
    options = [
        click.option("--exec", "exec_", multiple=True, metavar="CMD",
                     help="Run CMD at the barebox prompt, then stop QEMU (repeatable)."),
        click.option("--expect", multiple=True, metavar="REGEX",
                     help="Must match the --exec output (the boot log without --exec)."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="S",
                     help=f"Seconds for the boot and for each command [{DEFAULT_TIMEOUT:g}]."),
        click.option("--junit", metavar="FILE", help="Write the scripted run as JUnit XML."),
        click.option("--json", "json_", is_flag=True,
                     help="Print the scripted run as JSON (output and timing of each step)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pop_script(opts: dict) -> ScriptOptions | None:
    """Take the scripted-boot options out of the run options; None for an interactive boot."""
    commands, expectations = list(opts.pop("exec_")), list(opts.pop("expect"))
    timeout, junit, as_json = opts.pop("timeout"), opts.pop("junit"), opts.pop("json_")
    if not commands and not expectations:
        for name, given in (("--timeout", timeout), ("--junit", junit), ("--json", as_json)):
            if given:
                raise UsageError(f"{name} belongs to a scripted boot: add --exec CMD or "
                                 "--expect REGEX")
        return None
    from barebox_virtio_cli.session.shell import check_command, shorten

    for command in commands:
        problem = check_command(command)
        if problem:
            raise UsageError(f"--exec {shorten(command)!r} {problem}")
    from barebox_virtio_cli.session.report import compile_patterns

    compile_patterns(expectations)
    return ScriptOptions(commands, expectations, timeout or DEFAULT_TIMEOUT,
                         None if junit is None else _junit_path(Path(junit)), as_json)


def _junit_path(path: Path) -> Path:
    """A report may replace an earlier report, never another file."""
    if not path.parent.is_dir():
        raise UsageError(f"--junit {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"--junit {path}: is a directory")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--junit {path}: directory {path.parent} is not writable")
    if path.exists() and not _is_junit(path):
        raise UsageError(f"--junit {path}: exists and is not a JUnit report; choose another "
                         "file or remove it")
    return path


def _is_junit(path: Path) -> bool:
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(path).getroot().tag in ("testsuites", "testsuite")
    except (ET.ParseError, OSError):
        return False


def run_script(target, info, spec, argv: list[str], options: ScriptOptions) -> int:
    """Boot, run the script, report; the exit status is 0 only if everything held."""
    import signal

    from barebox_virtio_cli.qemu.args import activation_command, console_activation
    from barebox_virtio_cli.session import report
    from barebox_virtio_cli.session.scripted import Script, run_session

    where = "serial console" if spec.console is None else "virtio console"
    activation = None
    if spec.console is not None and console_activation(target, info) == "manual":
        activation = activation_command(target)
    script = Script(options.commands, options.expectations, options.timeout,
                    spec.console is not None, activation,
                    spec.console if spec.console_pipe is not None else None)
    if not options.json:
        say(f"booting {target.name} ({spec.image}); scripted session on the {where}")
    for sig in (signal.SIGTERM, signal.SIGHUP):  # so that run_session stops QEMU, cleans up
        signal.signal(sig, _exit_on_signal)
    result = run_session(argv, script, target.name,
                         on_step=None if options.json else _print_step)
    written = options.junit is None or _write_report(options.junit, report.to_junit(result))
    if options.json:
        click.echo(report.to_json(result))
    else:
        for line in report.expectation_lines(result):
            click.echo(line)
    if result.error:
        say(f"error: {result.error}")
    # After a missed expectation the commands' output is on screen already; the boot log is not.
    if result.last_lines and (result.error or not result.commands or options.json):
        say("last lines barebox printed:")
        for line in result.last_lines:
            click.echo(f"    {line}", err=True)
    if not options.json:
        say(report.summary(result))
    return 0 if result.ok and written else 1


def _exit_on_signal(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def _write_report(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError as exc:
        say(f"error: cannot write --junit {path}: {exc.strerror}")
        return False
    return True


def _print_step(step) -> None:
    from barebox_virtio_cli.session.report import step_lines

    if step.command is None:
        say(f"barebox prompt after {step.duration:.1f} s")
        return
    for line in step_lines(step):
        click.echo(line)
