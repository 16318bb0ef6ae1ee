"""A pytest plugin `bbv test` loads into barebox's test run (`-p` with this module): it appends
one JSON line per event to the file named by $BBV_TEST_EVENTS, so that bbv can show the
progress live and tally the outcomes without parsing pytest's output.

Events: {"event": "collected", "count": N}; {"event": "start", "name": NODEID};
{"event": "result", "name": NODEID, "outcome": "passed"|"failed"|"error"|"skipped"|
"xfailed"|"xpassed", "reason": TEXT}. Runs inside pytest, so it imports nothing of bbv."""

from __future__ import annotations

import json
import os

_file = None
_outcomes: dict[str, tuple[str, str]] = {}


def _emit(**event) -> None:
    global _file
    path = os.environ.get("BBV_TEST_EVENTS")
    if not path:
        return
    if _file is None:
        _file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with pytest
    _file.write(json.dumps(event) + "\n")


def pytest_collection_finish(session) -> None:
    _emit(event="collected", count=len(session.items))


def pytest_runtest_logstart(nodeid, location) -> None:
    _emit(event="start", name=nodeid)


def _reason(report) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(longrepr, "reprcrash", None)
        return crash.message.splitlines()[0] if crash and crash.message else str(longrepr)[:200]
    return ""


def _outcome(report) -> str | None:
    """The test's outcome from one phase's report (None: nothing to say yet)."""
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return "xpassed" if report.passed else "xfailed"
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return None


def pytest_runtest_logreport(report) -> None:
    outcome = _outcome(report)
    if outcome is not None and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = (outcome, _reason(report))
    elif report.when == "teardown" and report.failed:
        _outcomes[report.nodeid] = ("error", _reason(report))


def pytest_runtest_logfinish(nodeid, location) -> None:
    outcome, reason = _outcomes.get(nodeid, ("passed", ""))
    _emit(event="result", name=nodeid, outcome=outcome, reason=reason)


def pytest_unconfigure(config) -> None:
    if _file is not None:
        _file.close()
