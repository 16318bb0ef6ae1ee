"""What a finished LAVA job says, parsed from the REST API's answers (v0.2): its test cases
(/jobs/ID/tests/ with /suites/ for the names), the reason an Incomplete job gives (the metadata
of the `lava`.`job` case), its log (/jobs/ID/logs/: one YAML list item per line, each a JSON
mapping) and LAVA's own JUnit (/jobs/ID/junit/)."""

from __future__ import annotations

import json
from dataclasses import dataclass

LAVA_SUITE = "lava"  # LAVA's own actions; every test definition gets a suite of its own
PASSED = ("pass", "skip")


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    result: str  # pass, fail, skip, unknown

    @property
    def passed(self) -> bool:
        return self.result in PASSED

    def to_json(self) -> dict:
        return {"suite": self.suite, "name": self.name, "result": self.result}


def cases(tests: list[dict], suites: list[dict]) -> list[Case]:
    """The job's test cases in the order the server lists them."""
    names = {s["id"]: s["name"] for s in suites}
    return [Case(str(names.get(t["suite"], t["suite"])), str(t["name"]), str(t["result"]))
            for t in tests]


def shown(all_cases: list[Case]) -> list[Case]:
    """The cases a user asked for (their test definitions): LAVA's own only when they failed."""
    return [c for c in all_cases if c.suite != LAVA_SUITE or not c.passed]


def job_error(tests: list[dict], suites: list[dict]) -> tuple[str, str] | None:
    """(error type, message) of an Incomplete job, from its lava.job case."""
    import yaml

    lava = {s["id"] for s in suites if s["name"] == LAVA_SUITE}
    for test in tests:
        if test["suite"] in lava and test["name"] == "job" and test.get("metadata"):
            try:
                meta = yaml.safe_load(test["metadata"]) or {}
            except yaml.YAMLError:
                return None
            if isinstance(meta, dict) and (meta.get("error_type") or meta.get("error_msg")):
                return (str(meta.get("error_type") or "?").strip(),
                        str(meta.get("error_msg") or "").strip())
    return None


@dataclass(frozen=True)
class LogLine:
    level: str  # LAVA's: debug, info, warning, error, target, input, feedback, results
    message: str


def log_lines(text: str) -> list[LogLine]:
    """The log's lines; a line that does not parse is kept as is."""
    lines = []
    for raw in text.splitlines():
        body = raw[2:] if raw.startswith("- ") else raw
        try:
            entry = json.loads(body)
            level, msg = str(entry.get("lvl", "")), entry.get("msg", "")
        except (ValueError, AttributeError):
            if raw.strip():
                lines.append(LogLine("", raw))
            continue
        text = msg if isinstance(msg, str) else json.dumps(msg)
        lines += [LogLine(level, part) for part in text.splitlines() if part.strip()]
    return lines


def tail(lines: list[LogLine], count: int = 5) -> list[str]:
    """The last lines worth showing for a failure: the device's output and LAVA's messages,
    without debug chatter and result records."""
    keep = [f"{line.level}: {line.message}" if line.level not in ("target", "") else
            line.message for line in lines if line.level not in ("debug", "results")]
    return keep[-count:]


def junit_cases(xml: str) -> list[Case]:
    """The cases of LAVA's JUnit (testsuite name = suite, testcase name = case)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(xml)
    found = []
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            result = "pass"
            if case.find("failure") is not None or case.find("error") is not None:
                result = "fail"
            elif case.find("skipped") is not None:
                result = "skip"
            found.append(Case(suite.get("name", ""), case.get("name", ""), result))
    return found
