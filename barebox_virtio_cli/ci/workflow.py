"""barebox's CI as the tree defines it: the matrix and the build and test rules of
.github/workflows/test-labgrid-pytest.yml, read from the workflow's text (pure).

The matrix entries give ARCH, the lgenv glob, the defconfig and the optional lgargs and osimg.
The Build step's script gives the config fragments: `KCONFIG_ADD=...` assignments (or MAKEALL
`-k FILE` options in older releases), each under the `if` it sits in (always, when a yaml of
the entry uses a feature such as testfs, or for one ARCH and defconfig). The labgrid-pytest
step gives which yamls run (those naming one of its drivers) and how. What cannot be read
falls back to KNOWN, and the fallback is said in `notes`."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field

WORKFLOW = ".github/workflows/test-labgrid-pytest.yml"
FRAGMENTS = "common/boards/configs/"


@dataclass(frozen=True)
class CiJob:
    """One matrix entry: barebox's CI builds `defconfig` once and tests every yaml of `lgenv`."""

    arch: str
    lgenv: str  # a glob relative to the tree, as the workflow's `for i in ${{matrix.lgenv}}`
    defconfig: str
    lgargs: str = ""
    osimg: str = ""

    @property
    def build_name(self) -> str:
        """CI's build directory name, build-ARCH-DEFCONFIG."""
        return f"build-{self.arch}-{self.defconfig}"


@dataclass(frozen=True)
class Rule:
    """Fragments added when `when` holds: "" always, "feature:NAME" when a yaml of the job
    names that feature, "job:ARCH:DEFCONFIG" for one matrix entry."""

    when: str
    fragments: tuple[str, ...]


@dataclass
class Workflow:
    jobs: list[CiJob]
    rules: list[Rule]
    drivers: list[str]  # a yaml is tested only if it names one of these ([]: every yaml)
    pytest_args: list[str] = field(default_factory=list)  # CI's own, beyond --lg-env and junit
    steps_not_followed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not read and fell back

    def fragments(self, job: CiJob, features: set[str]) -> list[str]:
        """KCONFIG_ADD for one job, in the workflow's order, given the features its yamls use."""
        out: list[str] = []
        for rule in self.rules:
            kind, _, what = rule.when.partition(":")
            if (not rule.when or (kind == "feature" and what in features)
                    or (kind == "job" and what == f"{job.arch}:{job.defconfig}")):
                out += [f for f in rule.fragments if f not in out]
        return out

    def features(self) -> list[str]:
        return [r.when.partition(":")[2] for r in self.rules if r.when.startswith("feature:")]


# What the workflow said in v2025.12 to v2026.06, for a workflow whose Build step cannot be read.
KNOWN = Workflow(
    jobs=[],
    rules=[Rule("", (FRAGMENTS + "enable_self_test.config",
                     FRAGMENTS + "disable_target_tools.config")),
           Rule("job:sandbox:allyesconfig", ("CONFIG_CONSOLE_DISABLE_INPUT=n",
                                             "CONFIG_MALLOC_LIBC=y")),
           Rule("feature:testfs", (FRAGMENTS + "enable_dm_testing.config",
                                   FRAGMENTS + "enable_tlv_sig_testing.config"))],
    drivers=["QEMUDriver", "ExternalConsoleDriver"],
    pytest_args=["--verbosity=1"])

# Steps bbv does itself (checkout, the build, the test run) or that only report.
_FOLLOWED = re.compile(r"checkout|^build$|labgrid-pytest|determine used features|print|publish|"
                       r"upload|cache os image|download os image", re.IGNORECASE)


class WorkflowError(ValueError):
    """The workflow has no matrix bbv can read."""


def read_workflow(text: str) -> Workflow:
    """The matrix and rules of the workflow's text; WorkflowError without a readable matrix."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkflowError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    job = _labgrid_job(data)
    jobs = _matrix(job)
    steps = [s for s in job.get("steps") or [] if isinstance(s, dict)]
    notes: list[str] = []
    build = _step(steps, lambda s: "MAKEALL" in str(s.get("run", "")))
    test = _step(steps, lambda s: "pytest" in str(s.get("run", "")))
    rules = _rules(str(build.get("run", ""))) if build else []
    if not rules:
        rules = KNOWN.rules
        notes.append("no config fragments found in the workflow's Build step; using the rules "
                     "of barebox v2026.06: " + _describe(rules))
    drivers, pytest_args = _test_step(str(test.get("run", ""))) if test else ([], [])
    if not test:
        drivers, pytest_args = KNOWN.drivers, KNOWN.pytest_args
        notes.append("no labgrid-pytest step found; testing the yamls with "
                     f"{' or '.join(drivers)} as barebox v2026.06 does")
    others = [str(s.get("name") or s.get("uses") or "?") for s in steps
              if s is not build and s is not test
              and not _FOLLOWED.search(str(s.get("name") or s.get("uses") or ""))]
    others += [f"Build: {line}" for line in _build_commands(str(build.get("run", "")))] \
        if build else []
    return Workflow(jobs, rules, drivers, pytest_args, others, notes)


def _labgrid_job(data) -> dict:
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, dict) or not jobs:
        raise WorkflowError("no jobs")
    for job in jobs.values():
        if isinstance(job, dict) and isinstance(job.get("strategy"), dict):
            return job
    raise WorkflowError("no job with a strategy matrix")


def _matrix(job: dict) -> list[CiJob]:
    matrix = job["strategy"].get("matrix")
    entries = matrix.get("include") if isinstance(matrix, dict) else None
    if not isinstance(entries, list) or not entries:
        raise WorkflowError("no matrix include list")
    jobs = []
    for entry in entries:
        # GitHub's expressions ignore case: ${{matrix.arch}} reads the ARCH key
        entry = {str(k).lower(): "" if v is None else str(v)
                 for k, v in (entry.items() if isinstance(entry, dict) else [])}
        lacking = [key for key in ("arch", "lgenv", "defconfig") if not entry.get(key)]
        if lacking:
            raise WorkflowError(f"a matrix entry without {' or '.join(lacking)}: {entry}")
        jobs.append(CiJob(entry["arch"], entry["lgenv"], entry["defconfig"],
                        entry.get("lgargs", ""), entry.get("osimg", "")))
    return jobs


def _step(steps: list[dict], test) -> dict | None:
    return next((s for s in steps if test(s)), None)


_IF = re.compile(r"^\s*if\s+(.*?);?\s*then\s*$")
_ASSIGN = re.compile(r"^\s*(?:export\s+)?KCONFIG_ADD=(\"[^\"]*\"|'[^']*'|\S+)")
_FEATURE = re.compile(r"steps\.[\w-]+\.outputs\.(\w+)")
_MATRIX_EQ = re.compile(r"matrix\.(\w+)\s*}}\"?\s*=\s*\"?([\w.-]+)")


def _logical_lines(script: str) -> list[str]:
    """Shell lines with backslash-newline continuations joined."""
    return re.sub(r"\\\n\s*", " ", script).splitlines()


def _rules(script: str) -> list[Rule]:
    rules: dict[str, list[str]] = {}
    when = [""]
    for line in _logical_lines(script):
        opened = _IF.match(line)
        if opened:
            when.append(_condition(opened.group(1)))
            continue
        if re.match(r"^\s*fi\s*$", line):
            when.pop() if len(when) > 1 else None
            continue
        items = _assigned(line) if _ASSIGN.match(line) else _makeall_k(line)
        if items and when[-1] is not None:
            bucket = rules.setdefault(when[-1], [])
            bucket += [i for i in items if i not in bucket]
    return [Rule(k, tuple(v)) for k, v in rules.items() if v]


_KNOWN_LINE = re.compile(r"^\s*(#.*|if .*|fi|else|then|(export\s+)?(ARCH|KBUILD_OUTPUT|"
                         r"KCONFIG_ADD)=.*|\S*MAKEALL .*)?$")


def _build_commands(script: str) -> list[str]:
    """The Build step's commands besides the config and MAKEALL (firmware copies, scripts
    older releases ran), which bbv does not run."""
    return [line.strip() for line in _logical_lines(script) if not _KNOWN_LINE.match(line)]


def _condition(text: str) -> str | None:
    """The Rule.when of a shell `if`; None for a condition bbv does not understand."""
    feature = _FEATURE.search(text)
    if feature and "true" in text:
        return f"feature:{feature.group(1)}"
    pairs = dict(_MATRIX_EQ.findall(text.replace("${{ ", "${{")))
    pairs = {k.lower(): v for k, v in pairs.items()}
    if set(pairs) == {"arch", "defconfig"}:
        return f"job:{pairs['arch']}:{pairs['defconfig']}"
    return None


def _assigned(line: str) -> list[str]:
    value = _ASSIGN.match(line).group(1).strip("\"'")
    return [w for w in value.split() if w not in ("${KCONFIG_ADD}", "$KCONFIG_ADD")]


def _makeall_k(line: str) -> list[str]:
    if "MAKEALL" not in line:
        return []
    try:
        words = shlex.split(line)
    except ValueError:
        return []
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-k"]


def _test_step(script: str) -> tuple[list[str], list[str]]:
    """The drivers a yaml must name to be tested, and CI's fixed pytest options (those bbv
    sets itself, --lg-env, --junitxml and --lg-log, left out)."""
    drivers = []
    for line in script.splitlines():
        if "grep" in line and "Driver" in line:
            drivers = re.findall(r"(\w+Driver)", line)
    args: list[str] = []
    for line in _logical_lines(script):
        if "pytest" not in line or "--lg-env" not in line:
            continue
        words = line.split()
        start = next(i for i, w in enumerate(words) if "pytest" in w)
        for word in words[start + 1:]:
            if word.startswith("--") and not word.startswith(("--lg-env", "--junitxml",
                                                             "--lg-log")) and "$" not in word:
                args.append(word)
    return drivers, args


def _describe(rules: list[Rule]) -> str:
    parts = []
    for rule in rules:
        kind, _, what = rule.when.partition(":")
        cond = {"": "always", "feature": f"when a yaml uses {what}",
                "job": f"for {what.replace(':', ' ')}"}[kind]
        parts.append(f"{' '.join(f.removeprefix(FRAGMENTS) for f in rule.fragments)} ({cond})")
    return "; ".join(parts)


def describe_rules(workflow: Workflow) -> str:
    return _describe(workflow.rules)


def select(jobs: list[CiJob], names: list[str]) -> list[CiJob]:
    """The jobs named (by defconfig, `_defconfig` may be left out), in matrix order; every job
    without names. An unknown name is a ValueError naming the close matches."""
    if not names:
        return list(jobs)
    known = [j.defconfig for j in jobs]
    chosen: list[CiJob] = []
    for name in names:
        found = [j for j in jobs if name in (j.defconfig, j.defconfig.removesuffix("_defconfig"))]
        if not found:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                f"; the jobs are {', '.join(known)}"
            raise ValueError(f"no CI job '{name}' in the workflow's matrix{hint}")
        chosen += [j for j in found if j not in chosen]
    return [j for j in jobs if j in chosen]
