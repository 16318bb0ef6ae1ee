"""A scripted boot of `bbv run` (--exec, --expect, --timeout, --junit, --json): the options
checked, and the boot run and reported. Light at import: `bbv run --dry-run` loads this module
(the click options are in commands/_options.py)."""

from __future__ import annotations

import os
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.args import (
    RECORD,
    RECORD_TYPING_PACE,
    RECORD_TYPING_WINDOW,
    activation_command,
    boot_source,
    console_activation,
)
from barebox_virtio_cli.session import report
from barebox_virtio_cli.session.report import compile_patterns, step_lines
from barebox_virtio_cli.session.shell import check_command, shorten
from barebox_virtio_cli.util.atomic import CannotWrite, write_text
from barebox_virtio_cli.util.output import echo
from barebox_virtio_cli.util.signals import raising
from barebox_virtio_cli.util.status import say

DEFAULT_TIMEOUT = 30.0


class ScriptOptions:
    """What the scripted-boot options asked for (a plain class: a dataclass costs start-up)."""

    __slots__ = ("commands", "expectations", "timeout", "junit", "json")

    def __init__(self, commands: list[str], expectations: list[str], timeout: float,
                 junit: Path | None, json: bool) -> None:
        self.commands, self.expectations, self.timeout = commands, expectations, timeout
        self.junit, self.json = junit, json


def script_from(request, implied: bool = False) -> ScriptOptions | None:
    """The scripted-boot part of a RunRequest, checked; None for an interactive boot.
    implied: a scripted boot even without commands (--screenshot: boot, take it, stop)."""
    commands, expectations = list(request.exec), list(request.expect)
    timeout, junit, as_json = request.timeout, request.junit, request.json
    if not commands and not expectations and not implied:
        for name, given in (("--timeout", timeout), ("--junit", junit), ("--json", as_json)):
            if given:
                raise UsageError(f"{name} belongs to a scripted boot: add --exec CMD or "
                                 "--expect REGEX")
        return None
    check_exec(commands)

    compile_patterns(expectations)
    return ScriptOptions(commands, expectations, timeout or DEFAULT_TIMEOUT,
                         None if junit is None else _junit_path(Path(junit)), as_json)


def check_exec(commands: list[str]) -> None:
    """Each --exec must be one line barebox's shell runs as given (bbv run and export lava)."""
    for command in commands:
        problem = check_command(command)
        if problem:
            raise UsageError(f"--exec {shorten(command)!r} {problem}")


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


def run_script(machine, options: ScriptOptions, screenshot=None) -> int:
    """Boot the machine (qemu/machine.py), run the script, report; the exit status is 0 only
    if everything held."""
    target, spec = machine.target, machine.spec
    where = "serial console" if spec.console is None else "virtio console"
    if not options.json:
        machine.announce = lambda: say(f"booting {target.name} ({boot_source(spec)}); "
                                       f"scripted session on the {where}")
    try:
        result = session(machine, options, on_step=None if options.json else _print_step,
                         before_stop=None if screenshot is None else screenshot.take)
    finally:
        if screenshot is not None:
            screenshot.close()
    written = options.junit is None or _write_report(options.junit, report.to_junit(result))
    if options.json:
        echo(report.to_json(result))
    else:
        for line in report.expectation_lines(result):
            echo(line)
    if result.error:
        say(f"error: {result.error}")
    # After a missed expectation the commands' output is on screen already; the boot log is not.
    if result.last_lines and (result.error or not result.commands or options.json):
        qemu_lines, guest_lines = report.split_qemu_lines(result.last_lines)
        for title, lines in (("QEMU said:", qemu_lines),
                             ("last lines barebox printed:", guest_lines)):
            if lines:
                say(title)
            for line in lines:
                echo(f"    {line}", err=True)
    if not options.json:
        if spec.deterministic and result.boot.status == report.PASSED:
            say(report.guest_time_line(result.guest_time))
        say(report.summary(result))
    shot = screenshot is None or screenshot.report()
    return 0 if result.ok and written and shot else 1


def session(machine, options: ScriptOptions, on_step=None, before_stop=None):
    """Boot the machine and run the script: its ScriptResult, not reported (run_script, bbv
    bisect)."""
    # The session stack (console server, pexpect) is loaded for scripted boots only: it is a
    # fifth of `bbv run --dry-run`'s start-up, which every command pays through this module.
    from barebox_virtio_cli.session.scripted import Script, run_session

    target, spec = machine.target, machine.spec
    activation = None
    if spec.console is not None and console_activation(target, machine.info) == "manual":
        activation = activation_command(target)
    script = Script(options.commands, options.expectations, options.timeout,
                    spec.console is not None, activation, pace=typing_pace(spec),
                    window=typing_window(spec), guest_time=spec.deterministic)
    with raising():  # Signalled: the machine stops QEMU and cleans up; bbv exits 128+N
        return run_session(machine, script, on_step=on_step, before_stop=before_stop)


def typing_pace(spec) -> float:
    """Seconds between the characters bbv types: paced while QEMU records (RECORD_TYPING_PACE)."""
    return RECORD_TYPING_PACE if _recording(spec) else 0.0


def typing_window(spec) -> int:
    """Characters bbv types ahead of barebox's echo while QEMU records (0: a whole line)."""
    return RECORD_TYPING_WINDOW if _recording(spec) else 0


def _recording(spec) -> bool:
    return spec.icount is not None and spec.icount.mode == RECORD


def _write_report(path: Path, text: str) -> bool:
    try:
        write_text(path, text)
    except (OSError, CannotWrite) as exc:
        say(f"error: cannot write --junit {path}: {exc.strerror}")
        return False
    return True


def _print_step(step) -> None:
    if step.command is None:
        say(f"barebox prompt after {step.duration:.1f} s")
        return
    for line in step_lines(step):
        echo(line)
