"""bbv bisect's pure logic (bisect/steps.py): git bisect run's exit-status convention, --repeat,
the ends check, git's answers, and the JSON and table model."""

from __future__ import annotations

import pytest

from barebox_virtio_cli.bisect import steps as st
from barebox_virtio_cli.errors import BbvError

pytestmark = pytest.mark.pure

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.mark.parametrize("status, result", [(0, st.GOOD), (125, st.SKIP), (1, st.BAD),
                                            (2, st.BAD), (124, st.BAD), (126, st.BAD),
                                            (127, st.BAD)])
def test_command_status_follows_git_bisect_run(status, result):
    assert st.command_result(status) == result


@pytest.mark.parametrize("status, words", [(128, "exited 128"), (255, "exited 255"),
                                           (-15, "killed by signal 15")])
def test_status_128_and_more_or_a_signal_stops_the_bisection(status, words):
    with pytest.raises(st.Stop, match=words) as caught:
        st.command_result(status)
    assert isinstance(caught.value, BbvError) and "125 skip" in str(caught.value)


@pytest.mark.parametrize("runs, result", [([st.GOOD], st.GOOD), ([st.GOOD] * 3, st.GOOD),
                                          ([st.GOOD, st.BAD], st.BAD),
                                          ([st.GOOD, st.SKIP], st.SKIP),
                                          ([st.SKIP, st.BAD], st.BAD)])
def test_repeat_is_bad_if_any_run_is_bad(runs, result):
    assert st.combined(runs) == result


def test_ends_as_the_user_said_are_no_problem():
    assert st.ends_problem(st.CommitStep(SHA, result=st.GOOD), st.GOOD) is None
    assert st.ends_problem(st.CommitStep(SHA, result=st.BAD), st.BAD) is None


def test_good_end_that_fails_and_bad_end_that_passes_are_refused():
    good = st.ends_problem(st.CommitStep(SHA, result=st.BAD, note="/x/ not found"), st.GOOD)
    assert good.startswith(f"--good {SHA[:12]} fails the check: /x/ not found;")
    bad = st.ends_problem(st.CommitStep(SHA, result=st.GOOD), st.BAD)
    assert bad.startswith(f"--bad {SHA[:12]} passes the check;") and "nothing to bisect" in bad


def test_end_that_does_not_build_says_so():
    step = st.CommitStep(SHA, result=st.SKIP, note="does not build: x.c:1: error")
    problem = st.ends_problem(step, st.GOOD)
    assert problem == (f"--good {SHA[:12]} could not be checked (does not build: x.c:1: error); "
                       "choose a good commit that builds and boots")


def test_git_answers():
    assert st.parse_answer("Bisecting: 3 revisions left to test after this (roughly 2 steps)\n"
                           f"[{SHA}] subject\n") == ("next", [])
    found = (f"{SHA} is the first bad commit\ncommit {SHA}\nAuthor: A <a@b>\n\n    subject\n")
    assert st.parse_answer(found) == ("found", [SHA])
    skipped = ("There are only 'skip'ped commits left to test.\nThe first bad commit could be "
               f"any of:\n{SHA}\n{OTHER}\nWe cannot bisect more!\n")
    assert st.parse_answer(skipped) == ("skipped", [SHA, OTHER])


def test_json_shape_and_exit_status():
    outcome = st.BisectOutcome("vexpress", OTHER, SHA, log="/x/bisect.log")
    outcome.steps = [st.CommitStep(SHA, "s", st.BAD, 1.234, 0.55, role="bad end"),
                     st.CommitStep(OTHER, "t", st.SKIP, 2.0, 0.0, note="does not build: e")]
    assert st.exit_status(outcome) == 1
    outcome.first_bad = st.Commit(SHA, "s", "A <a@b>", "2026-01-01 00:00:00 +0000")
    data = st.to_json(outcome)
    assert st.exit_status(outcome) == 0
    assert data["first_bad"] == SHA and data["log"] == "/x/bisect.log"
    assert data["steps"][0] == {"commit": SHA, "result": "bad", "build_seconds": 1.2,
                                "check_seconds": 0.6, "subject": "s", "role": "bad end",
                                "note": ""}
    assert {"commit", "result", "build_seconds", "check_seconds"} <= set(data["steps"][1])


def test_table_rows_and_step_line():
    step = st.CommitStep(SHA, "x" * 80, st.BAD, 12.04, 3.0, note="/v/ not found", role="bad end")
    [row] = st.table_rows([step])
    assert row[0] == SHA[:12] and len(row[1]) == 50 and row[1].endswith("…")
    assert row[2:] == ("bad (bad end)", "12.0 s", "3.0 s", "/v/ not found")
    assert st.step_line(step) == f"{SHA[:12]} BAD (build 12.0 s, check 3.0 s): /v/ not found"


def test_qemu_refusing_both_ends_alike_stops_the_bisection():
    said = "no barebox prompt: QEMU exited; st.QEMU_SAID qemu-system-arm: -x: invalid option"
    said = said.replace("st.QEMU_SAID", st.QEMU_SAID)
    ends = [st.CommitStep(SHA, result=st.BAD, note=said, role="bad end"),
            st.CommitStep(OTHER, result=st.BAD, note=said, role="good end")]
    line = st.qemu_refused(ends)
    assert line.startswith("QEMU refused to start at both ends")
    assert "qemu-system-arm: -x: invalid option" in line
    # one end only, different reasons, or no QEMU line: the commits are judged as usual
    assert st.qemu_refused(ends[:1]) is None
    assert st.qemu_refused([ends[0], st.CommitStep(OTHER, note=said.replace("-x", "-y"))]) is None
    assert st.qemu_refused([st.CommitStep(SHA, note="no barebox prompt: timed out")] * 2) is None
