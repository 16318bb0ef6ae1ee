"""Pure logic of `bbv bisect`: what a check's outcome means to `git bisect`, what git answers,
when the ends are wrong, and the result as a table, as JSON and as an exit status. Nothing here
runs a process or touches a file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from barebox_virtio_cli.errors import BbvError

GOOD, BAD, SKIP = "good", "bad", "skip"
# git bisect run's convention for a check command: 0 good, 125 skip, 1-127 bad; others stop.
SKIP_STATUS = 125
QEMU_SAID = "QEMU said:"

_FOUND = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.MULTILINE)
_ONLY_SKIPPED = "There are only 'skip'ped commits left to test."
_SHA = re.compile(r"^([0-9a-f]{40})\b", re.MULTILINE)


class Stop(BbvError):
    """The check cannot go on (a command's status that stops a bisection, as in `git bisect
    run`); the message says why."""


def command_result(status: int) -> str:
    """A check command's exit status as git bisect run reads it (-N: killed by signal N)."""
    if status == 0:
        return GOOD
    if status == SKIP_STATUS:
        return SKIP
    if 0 < status < 128:
        return BAD
    how = f"was killed by signal {-status}" if status < 0 else f"exited {status}"
    raise Stop(f"the check command {how}; as with git bisect run, an exit status of 128 or "
               "more stops the bisection (0 good, 125 skip, 1-127 bad)")


def combined(results: list[str]) -> str:
    """--repeat: bad if any run was bad, else skip if any run skipped, else good."""
    for result in (BAD, SKIP):
        if result in results:
            return result
    return GOOD


@dataclass
class CommitStep:
    """One commit built and checked."""

    commit: str
    subject: str = ""
    result: str = SKIP
    build_seconds: float = 0.0
    check_seconds: float = 0.0
    note: str = ""  # why: the first build error, the failed expectation, ...
    role: str = "step"  # "good end", "bad end" or "step"

    def to_json(self) -> dict:
        return {"commit": self.commit, "result": self.result,
                "build_seconds": round(self.build_seconds, 1),
                "check_seconds": round(self.check_seconds, 1),
                "subject": self.subject, "role": self.role, "note": self.note}


@dataclass
class Commit:
    sha: str
    subject: str
    author: str
    date: str


@dataclass
class BisectOutcome:
    target: str
    good: str
    bad: str
    steps: list[CommitStep] = field(default_factory=list)
    first_bad: Commit | None = None
    why: str = ""  # when no first bad commit was found
    candidates: list[str] = field(default_factory=list)  # only skipped commits left
    log: str | None = None  # where the git bisect log was saved

    @property
    def found(self) -> bool:
        return self.first_bad is not None


def ends_problem(step: CommitStep, expected: str) -> str | None:
    """Why an end of the range cannot be bisected from, or None if it is as the user said."""
    if step.result == expected:
        return None
    option, short = f"--{expected}", step.commit[:12]
    if step.result == SKIP:
        return (f"{option} {short} could not be checked ({step.note or 'skipped'}); choose a "
                f"{expected} commit that builds and boots")
    said = "passes" if step.result == GOOD else "fails"
    hint = ("the check fails there too: is it the right check, or is the good commit not good?"
            if expected == GOOD else
            "nothing to bisect: is it the right check, or is the bad commit not bad?")
    return (f"{option} {short} {said} the check{': ' + step.note if step.note else ''}; "
            f"{hint}")


def qemu_refused(ends: list[CommitStep]) -> str | None:
    """The line that stops a bisection whose two ends QEMU refused alike (its command line,
    not a commit, is wrong: -qemu-arg -nonsense), or None."""
    said = {step.note.partition(f" {QEMU_SAID} ")[2] for step in ends}
    if len(ends) != 2 or len(said) != 1 or not all(said):
        return None
    return (f"QEMU refused to start at both ends, before barebox ran: {said.pop()}; check "
            "--qemu-arg and the device options (bbv run --dry-run shows the command line)")


def parse_answer(text: str) -> tuple[str, list[str]]:
    """What `git bisect good|bad|skip` (or start) answered: ("next", []) for another commit to
    test, ("found", [sha]) or ("skipped", [candidate shas])."""
    found = _FOUND.search(text)
    if found:
        return "found", [found.group(1)]
    if _ONLY_SKIPPED in text:
        return "skipped", _SHA.findall(text.split(_ONLY_SKIPPED, 1)[1])
    return "next", []


def exit_status(outcome: BisectOutcome) -> int:
    return 0 if outcome.found else 1


def to_json(outcome: BisectOutcome) -> dict:
    first = outcome.first_bad
    return {
        "target": outcome.target, "good": outcome.good, "bad": outcome.bad,
        "first_bad": first.sha if first else None,
        "subject": first.subject if first else None,
        "author": first.author if first else None,
        "date": first.date if first else None,
        "why": outcome.why or None, "candidates": outcome.candidates,
        "steps": [s.to_json() for s in outcome.steps],
        "log": outcome.log,
    }


def table_rows(steps: list[CommitStep]) -> list[tuple[str, ...]]:
    """commit, subject, result, build, check, note: one row per step."""
    return [(s.commit[:12], _cut(s.subject, 50), s.result + (f" ({s.role})" if s.role != "step"
                                                           else ""),
             f"{s.build_seconds:.1f} s", f"{s.check_seconds:.1f} s", _cut(s.note, 60))
            for s in steps]


def step_line(step: CommitStep) -> str:
    """The line that ends a step: commit, result, times and why."""
    note = f": {step.note}" if step.note else ""
    return (f"{step.commit[:12]} {step.result.upper()} (build {step.build_seconds:.1f} s, "
            f"check {step.check_seconds:.1f} s){note}")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
