"""Pure logic: the result of a scripted boot, its expectations, and its renderings as text,
JSON and JUnit XML. Nothing here touches processes or files."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.session.shell import last_lines

PASSED, FAILED, TIMEOUT, ERROR, SKIPPED = "passed", "failed", "timeout", "error", "skipped"


@dataclass
class Step:
    """The boot (command None) or one --exec command."""

    command: str | None
    status: str = SKIPPED
    output: str = ""
    exit_status: int | None = None
    duration: float = 0.0
    message: str = ""

    @property
    def name(self) -> str:
        return "boot" if self.command is None else self.command


@dataclass
class Expectation:
    pattern: str
    match: str | None = None  # the text it matched

    @property
    def ok(self) -> bool:
        return self.match is not None


@dataclass
class GuestTime:
    """--deterministic: boot to prompt in guest time, from barebox's own log (session/shell.py,
    last_boot_message): the timestamp of its last message before the prompt."""

    us: int
    message: str


@dataclass
class ScriptResult:
    target: str
    console: str  # "serial" or "virtio"
    boot: Step = field(default_factory=lambda: Step(None))
    commands: list[Step] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    duration: float = 0.0
    error: str | None = None  # why the session ended early
    last_lines: list[str] = field(default_factory=list)
    guest_time: GuestTime | None = None  # --deterministic only

    @property
    def ok(self) -> bool:
        return (self.error is None and self.boot.status == PASSED
                and all(s.status == PASSED for s in self.commands)
                and all(e.ok for e in self.expectations))


def compile_patterns(patterns: list[str]) -> list[re.Pattern]:
    """--expect regexes, checked before anything boots; ^ and $ work per line."""
    compiled = []
    for pattern in patterns:
        if not pattern:
            raise UsageError("--expect '' matches any output, so it checks nothing: "
                             "give the text the output must contain")
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except re.error as exc:
            raise UsageError(f"--expect '{pattern}' is not a valid regular expression: {exc}")\
                from None
    return compiled


def checked_text(result: ScriptResult) -> str:
    """What --expect is matched against: all commands' output, or the boot log without --exec."""
    if not result.commands:
        return result.boot.output
    return "\n".join(step.output for step in result.commands)


def check_expectations(result: ScriptResult, patterns: list[str]) -> None:
    """Match the expectations; a miss keeps the end of the checked text as the last lines."""
    text = checked_text(result)
    result.expectations = []
    for regex in compile_patterns(patterns):
        found = regex.search(text)
        result.expectations.append(Expectation(regex.pattern, found[0] if found else None))
    if not result.last_lines and not all(e.ok for e in result.expectations):
        result.last_lines = last_lines(text)


def summary(result: ScriptResult) -> str:
    failed = [s for s in result.commands if s.status != PASSED]
    missed = [e for e in result.expectations if not e.ok]
    parts = [f"{len(result.commands) - len(failed)}/{len(result.commands)} commands passed"]
    if result.expectations:
        parts.append(f"{len(result.expectations) - len(missed)}/{len(result.expectations)} "
                     "expectations met")
    word = "PASS" if result.ok else "FAIL"
    return f"{word}: {', '.join(parts)} (boot {result.boot.duration:.1f} s, " \
           f"total {result.duration:.1f} s)"


def guest_time_line(guest: GuestTime | None) -> str:
    if guest is None:
        return ("boot to prompt in guest time: unknown, barebox's `dmesg -t` showed no message "
                "of its boot log (CONFIG_CMD_DMESG?)")
    return f"boot to prompt in guest time: {guest.us} us (barebox's last boot message, " \
           f"'{guest.message}')"


def step_lines(step: Step) -> list[str]:
    """A finished command as the user reads it: command, output, outcome."""
    lines = [f"$ {step.command}"]
    if step.output:
        lines += step.output.split("\n")
    outcome = {PASSED: "ok", FAILED: "FAILED"}.get(step.status, step.status.upper())
    status = "" if step.exit_status is None else f"exit status {step.exit_status}, "
    lines.append(f"  [{outcome}] {status}{step.duration:.2f} s")
    return lines


def expectation_lines(result: ScriptResult) -> list[str]:
    where = "the commands' output" if result.commands else "the boot log"
    return [f"expect /{e.pattern}/: " + (f"found {e.match!r}" if e.ok else f"NOT found in {where}")
            for e in result.expectations]


def to_json(result: ScriptResult) -> str:
    data = asdict(result)
    data["ok"] = result.ok
    for exp, raw in zip(result.expectations, data["expectations"], strict=True):
        raw["ok"] = exp.ok
    return json.dumps(data, indent=2)


def to_junit(result: ScriptResult) -> str:
    """JUnit XML: one testcase for the boot, one per command, one per expectation."""
    suite = ET.Element("testsuite", name=f"bbv.{result.target}")
    cases = [_step_case(result, result.boot)]
    cases += [_step_case(result, step) for step in result.commands]
    cases += [_expect_case(result, exp) for exp in result.expectations]
    suite.extend(cases)
    counts = {"failures": "failure", "errors": "error", "skipped": "skipped"}
    suite.set("tests", str(len(cases)))
    for attr, tag in counts.items():
        suite.set(attr, str(sum(1 for case in cases if case.find(tag) is not None)))
    suite.set("time", f"{result.duration:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _step_case(result: ScriptResult, step: Step) -> ET.Element:
    kind = "boot" if step.command is None else "exec"
    case = ET.Element("testcase", classname=f"bbv.{result.target}.{kind}", name=step.name,
                      time=f"{step.duration:.3f}")
    if step.status == FAILED:
        ET.SubElement(case, "failure", message=step.message or "failed").text = \
            _xml_text(step.output)
    elif step.status in (TIMEOUT, ERROR):
        detail = ET.SubElement(case, "error", type=step.status, message=_xml_text(step.message))
        detail.text = _xml_text("\n".join(result.last_lines))
    elif step.status == SKIPPED:
        ET.SubElement(case, "skipped", message=step.message or "not run")
    if step.output:
        ET.SubElement(case, "system-out").text = _xml_text(step.output)
    return case


def _expect_case(result: ScriptResult, exp: Expectation) -> ET.Element:
    case = ET.Element("testcase", classname=f"bbv.{result.target}.expect", name=exp.pattern,
                      time="0")
    if not exp.ok:
        where = "the commands' output" if result.commands else "the boot log"
        ET.SubElement(case, "failure", message=f"/{exp.pattern}/ not found in {where}").text = \
            _xml_text("\n".join(result.last_lines))
    return case


_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters; console output can."""
    return _XML_INVALID.sub("?", text)


_QEMU_LINE = re.compile(r"^qemu-system-[\w.-]+: ")


def split_qemu_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """The console's last lines as (QEMU's own messages, what the guest printed). QEMU's lines
    start with its program name; when they come first, barebox never ran, so the lines after
    them (QEMU's continuation lines, such as 'Is another process using the image?') are QEMU's
    too."""
    if lines and _QEMU_LINE.match(lines[0]):
        return list(lines), []
    qemu = [line for line in lines if _QEMU_LINE.match(line)]
    return qemu, [line for line in lines if not _QEMU_LINE.match(line)]
