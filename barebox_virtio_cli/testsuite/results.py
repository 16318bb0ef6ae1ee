"""Pure logic of `bbv test`: per-target results from the plugin's events, the summary (table
rows, failed tests, skip reasons), the JSON, the exit status, and pytest's command line."""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

DEVEL_CONFIG = "common/boards/configs/devel.config"  # what MAKEALL -d merges
EXPORT_NAME = "bbv-labgrid.yaml"
LOG_NAME = "bbv-test.log"
EVENTS_NAME = "bbv-test-events.jsonl"
CONSOLE_DIR = "bbv-test-console"
_CONFIG = re.compile(r"CONFIG_\w+((,\s*|\s+and\s+)CONFIG_\w+)*")
PLUGIN = "barebox_virtio_cli.testsuite.plugin"


@dataclass
class TestCase:
    name: str
    outcome: str
    reason: str = ""


@dataclass
class TargetResult:
    target: str
    build_dir: Path | None = None
    build_seconds: float | None = None  # None: not built (--no-build, or it failed)
    duration: float = 0.0  # wall time of the test run, seconds
    collected: int | None = None
    tests: list[TestCase] = field(default_factory=list)
    error: str = ""  # why the target has no (complete) results: build or boot failure
    log: Path | None = None

    def count(self, outcome: str) -> int:
        return sum(t.outcome == outcome for t in self.tests)

    @property
    def failed_or_error(self) -> int:
        return self.count("failed") + self.count("error")

    @property
    def ok(self) -> bool:
        return not self.error and self.failed_or_error == 0


def read_events(text: str) -> tuple[int | None, list[TestCase], str | None]:
    """(tests collected, results so far, the test running now) from the plugin's JSON lines;
    a line still being written is ignored."""
    collected, results, running = None, {}, None
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "collected":
            collected = int(event.get("count", 0))
        elif kind == "start":
            running = event.get("name")
        elif kind == "result":
            name = str(event.get("name"))
            results[name] = TestCase(name, str(event.get("outcome", "")).lower(),
                                     str(event.get("reason", "")))
            running = None
    return collected, list(results.values()), running


def progress(collected: int | None, done: int, running: str | None) -> str:
    if collected is None:
        return "collecting tests"
    if done == 0 and running is not None:
        return f"booting (test 1 of {collected})"
    if running is None:
        return f"test {done} of {collected}"
    return f"test {done + 1} of {collected}: {running.rpartition('::')[2]}"


def to_json(results: list[TargetResult]) -> list[dict]:
    return [{"target": r.target, "passed": r.count("passed"),
             "failed": r.count("failed"), "skipped": r.count("skipped"),
             "xfailed": r.count("xfailed"), "errors": r.count("error"),
             "duration": round(r.duration, 2),
             "build_seconds": None if r.build_seconds is None else round(r.build_seconds, 1),
             "error": r.error or None,
             "log": str(r.log) if r.log else None,
             "tests": [{"name": t.name, "outcome": t.outcome,
                        **({"reason": t.reason} if t.reason and t.outcome != "passed" else {})}
                       for t in r.tests]}
            for r in results]


def exit_status(results: list[TargetResult]) -> int:
    return 0 if results and all(r.ok for r in results) else 1


def failures(results: list[TargetResult]) -> list[tuple[str, str, str, str]]:
    """(target, test name, reason, log) for every failed test, build or boot."""
    rows = []
    for r in results:
        log = str(r.log) if r.log else ""
        if r.error:
            rows.append((r.target, "(no test results)" if not r.tests else "(run aborted)",
                         r.error, log))
        rows += [(r.target, t.name, t.reason, log) for t in r.tests
                 if t.outcome in ("failed", "error")]
    return rows


def skip_reasons(results: list[TargetResult], most: int = 5) -> tuple[int, list[tuple[str, int]]]:
    """How many tests were skipped, and the most common reasons with their counts; reasons
    that differ only in the config symbols named (barebox's skip_disabled) count as one."""
    reasons = collections.Counter(
        _CONFIG.sub("CONFIG_*", t.reason) if t.reason else "(no reason given)"
        for r in results for t in r.tests if t.outcome == "skipped")
    return sum(reasons.values()), reasons.most_common(most)


def skips(results: list[TargetResult]) -> list[tuple[str, str, str]]:
    """(target, test name, reason) for every skipped test."""
    return [(r.target, t.name, t.reason or "(no reason given)") for r in results
            for t in r.tests if t.outcome == "skipped"]


# The outcomes counted in tables, as pytest reports them (an error is one in a fixture or setup).
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "error")


def table_rows(results: list[TargetResult]) -> list[list[str]]:
    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    rows = []
    for r in results:
        counts = [str(r.count(outcome)) for outcome in OUTCOMES]
        if r.error and not r.tests:
            counts = ["-"] * len(OUTCOMES)
        rows.append([r.target, secs(r.build_seconds), *counts,
                     secs(r.duration) if r.duration else "-"])
    return rows


def pytest_argv(python: str, env_file: Path, suite: str, junit: Path | None,
                keyword: str | None, console_dir: Path, extra: list[str]) -> list[str]:
    """pytest for barebox's suite, as MAKEALL runs it (`pytest --lg-env YAML`), plus bbv's
    event plugin, labgrid's console log and, if asked, pytest's own JUnit report."""
    argv = [python, "-m", "pytest", "--lg-env", str(env_file), "-p", PLUGIN,
            "--lg-log", str(console_dir), "-o", "console_output_style=classic"]
    if junit is not None:
        argv += ["--junitxml", str(junit)]
    if keyword:
        argv += ["-k", keyword]
    return [*argv, *extra, suite]


def fragments(devel: bool, kconfig_add: list[str]) -> list[str]:
    """The config fragments merged into each build: MAKEALL -d's, then the user's."""
    return list(dict.fromkeys(([DEVEL_CONFIG] if devel else []) + list(kconfig_add)))


def no_tests_ran(keyword: str | None, pytest_args: list[str]) -> str:
    """pytest's exit status 5: nothing was collected or everything was deselected; a typo in
    -k must not pass as a green run."""
    chosen = f"-k {keyword!r}" if keyword else "the selection"
    extra = f" (and the pytest arguments {' '.join(pytest_args)})" if pytest_args else ""
    return f"no tests ran: {chosen}{extra} matched none of the suite's tests (pytest exit 5)"


def pytest_failure(returncode: int, log_text: str) -> str:
    """Why a pytest run ended without complete results (exit status 2-4), from its output."""
    wanted = ("Exit:", "ERROR", "Error", "error:", "TIMEOUT", "Timeout")
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("!!!") and "exit" in line.lower():
            return line.strip("! ")
    for line in reversed(lines):
        if any(w in line for w in wanted):
            return line[:300]
    return f"pytest exited with status {returncode}"
