"""The host requirements of barebox's test suite (configs/suite/requirements.toml): which are
unmet, given facts probed elsewhere (doctor/host.py), the tests each one costs, and the lines
`bbv test` warns with. Pure: nothing is probed here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from barebox_virtio_cli.errors import BbvError

KINDS = ("python", "program", "probe")
OUTCOMES = ("skipped", "error")
_INSTALL = {"debian": "apt install", "fedora": "dnf install"}
_TEST_DEF = re.compile(r"^def (test_\w+)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class Requirement:
    name: str
    kind: str  # python, program or probe
    what: str  # the module, program or probe name
    tests: tuple[str, ...]  # test files (or file::test) that go without it
    outcome: str  # what those tests do without it: skipped or error
    why: str
    pip: str = ""  # the PyPI name, when bbv[labgrid] brings it
    packages: dict[str, str] = field(default_factory=dict)  # distro -> package
    fix: str = ""  # what to do when no package is the answer
    features: tuple[str, ...] = ()  # labgrid features of an env without which the tests skip

    def how_to_install(self, distros: tuple[str, ...] = ("debian", "fedora")) -> str:
        """pip for what bbv[labgrid] brings, else the distributions' packages, else the fix."""
        if self.pip:
            return "pip install 'bbv[labgrid]'"
        ways = [f"{_INSTALL[d]} {p}" for d, p in self.packages.items() if d in distros]
        return " or ".join(ways) or self.fix or "-"


def parse_requirements(data: dict, source: str) -> list[Requirement]:
    """The [[requirement]] entries; a malformed one is an error naming the file."""
    found = []
    for index, entry in enumerate(data.get("requirement", [])):
        kinds = [k for k in KINDS if k in entry]
        where = f"{source}: requirement {index + 1} ({entry.get('name', '?')})"
        if len(kinds) != 1:
            raise BbvError(f"{where}: give one of {', '.join(KINDS)}")
        outcome = entry.get("outcome", "skipped")
        if outcome not in OUTCOMES or not entry.get("tests") or "name" not in entry:
            raise BbvError(f"{where}: needs name, tests and an outcome of "
                           f"{' or '.join(OUTCOMES)}")
        found.append(Requirement(
            name=str(entry["name"]), kind=kinds[0], what=str(entry[kinds[0]]),
            tests=tuple(str(t) for t in entry["tests"]), outcome=outcome,
            why=str(entry.get("why", "")), pip=str(entry.get("pip", "")),
            packages={d: str(entry[d]) for d in ("debian", "fedora") if entry.get(d)},
            fix=str(entry.get("fix", "")),
            features=tuple(str(f) for f in entry.get("features", []))))
    return found


@dataclass(frozen=True)
class HostFacts:
    """What the host has, for the requirements' kinds: Python modules importable, programs on
    PATH, and each behaviour probe's verdict (None: fine, else what is wrong)."""

    modules: frozenset[str] = frozenset()
    programs: frozenset[str] = frozenset()
    probes: dict[str, str | None] = field(default_factory=dict)


def problem(req: Requirement, facts: HostFacts) -> str | None:
    """Why the host does not meet the requirement, or None when it does."""
    if req.kind == "python":
        return None if req.what in facts.modules else \
            f"Python module {req.what} not importable by this Python"
    if req.kind == "program":
        return None if req.what in facts.programs else f"{req.what} not on PATH"
    return facts.probes.get(req.what, f"probe {req.what} not run")


def suite_tests(path: str, text: str | None) -> list[str]:
    """The tests a requirement's entry stands for: file::test as is, a whole file as each of
    its test functions (text: the file's; None when the tree has no such file: no tests)."""
    if text is None:
        return []
    if "::" in path:
        return [path]
    return [f"{path}::{name}" for name in _TEST_DEF.findall(text)]


@dataclass(frozen=True)
class Unmet:
    requirement: Requirement
    problem: str
    tests: list[str]  # the tests that go without it (in the tree at hand)

    def warning(self) -> str:
        by_file: dict[str, list[str]] = {}
        for test in self.tests:
            path, _, name = test.partition("::")
            by_file.setdefault(path, []).append(name)
        names = "; ".join(f"{path} ({', '.join(tests)})" for path, tests in by_file.items()) \
            or ", ".join(self.requirement.tests)
        verb = "will error" if self.requirement.outcome == "error" else "will be skipped"
        return (f"{self.problem}: {names} {verb}; "
                f"{self.requirement.how_to_install(('debian',))}")


def unmet(reqs: list[Requirement], facts: HostFacts,
          sources: dict[str, str | None] | None = None,
          offers: Callable[[str], bool] | None = None) -> list[Unmet]:
    """The requirements the host misses. With sources (test file -> its text in the tree, None
    when absent), only those whose tests the tree has, each with its tests named. With offers
    (does an env of the run have this labgrid feature?), only those whose tests can run: a
    test that needs testfs skips on an env without it, whatever the host has."""
    found = []
    for req in reqs:
        why = problem(req, facts)
        if why is None or (offers is not None and not all(map(offers, req.features))):
            continue
        if sources is None:
            found.append(Unmet(req, why, []))
            continue
        tests = [name for path in req.tests
                 for name in suite_tests(path, sources.get(path.partition("::")[0]))]
        if tests:
            found.append(Unmet(req, why, tests))
    return found
