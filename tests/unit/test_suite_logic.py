"""bbv test's pure logic: the plugin's events, the results, the table, the JSON and the exit
status (testsuite/results.py), pytest's command line, and the checks of -k and labgrid
(testsuite/request.py), without processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.testsuite import request as suite
from barebox_virtio_cli.testsuite import results as res

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("pytest_importable", [True, False])
def test_keyword_is_checked_with_or_without_pytests_parser(monkeypatch, pytest_importable):
    if not pytest_importable:
        monkeypatch.setitem(sys.modules, "_pytest.mark.expression", None)  # ImportError
    for good in ("shell", "shell and not (net or fs)", "x-y"):
        suite.check_keyword(good)
    for bad in ("bad((", "(a))(", ")"):
        with pytest.raises(UsageError, match="is not a pytest -k expression"):
            suite.check_keyword(bad)
    if pytest_importable:
        with pytest.raises(UsageError, match="at column"):
            suite.check_keyword("a and")


def test_missing_labgrid_is_one_line_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "labgrid" else real(name, *a))
    with pytest.raises(BbvError, match=r"pip install 'bbv\[labgrid\]'"):
        suite.check_labgrid()


EVENTS = "\n".join(json.dumps(e) for e in [
    {"event": "collected", "count": 4},
    {"event": "start", "name": "t.py::a"},
    {"event": "result", "name": "t.py::a", "outcome": "passed", "reason": ""},
    {"event": "start", "name": "t.py::b"},
    {"event": "result", "name": "t.py::b", "outcome": "error", "reason": "boom"},
    {"event": "start", "name": "t.py::c"},
    {"event": "result", "name": "t.py::c", "outcome": "skipped",
     "reason": "skipping test due to disabled CONFIG_A,CONFIG_B dependency"},
    {"event": "start", "name": "t.py::d"},
]) + '\n{"event": "resu'  # a line still being written


def test_events_give_progress_counts_and_json():
    collected, tests, running = res.read_events(EVENTS)
    assert (collected, len(tests), running) == (4, 3, "t.py::d")
    assert res.progress(collected, len(tests), running) == "test 4 of 4: d"
    assert res.progress(4, 0, "t.py::a") == "booting (test 1 of 4)"
    result = res.TargetResult("vexpress", build_seconds=1.25, duration=3.0, tests=tests)
    assert result.failed_or_error == 1 and not result.ok
    [data] = res.to_json([result])
    # counted as `bbv test --ci` counts: an error (in a fixture) is not a failed test
    assert (data["passed"], data["failed"], data["skipped"], data["xfailed"],
            data["errors"]) == (1, 0, 1, 0, 1)
    assert data["tests"][0] == {"name": "t.py::a", "outcome": "passed"}
    assert data["tests"][1] == {"name": "t.py::b", "outcome": "error", "reason": "boom"}
    assert data["tests"][2]["reason"] == \
        "skipping test due to disabled CONFIG_A,CONFIG_B dependency"
    assert res.skips([result]) == [
        ("vexpress", "t.py::c", "skipping test due to disabled CONFIG_A,CONFIG_B dependency")]
    assert res.table_rows([result]) == [["vexpress", "1.2 s", "1", "0", "1", "0", "1", "3.0 s"]]
    assert res.exit_status([result]) == 1
    assert res.exit_status([res.TargetResult("x", tests=tests[:1])]) == 0
    assert res.exit_status([]) == 1


def test_skip_reasons_group_config_names():
    tests = [res.TestCase(f"t{i}", "skipped", f"skipping test due to disabled CONFIG_X{i} "
                          "dependency") for i in range(3)]
    tests += [res.TestCase("u", "skipped", "no framebuffer"), res.TestCase("v", "passed")]
    count, reasons = res.skip_reasons([res.TargetResult("t", tests=tests)])
    assert count == 4
    assert reasons == [("skipping test due to disabled CONFIG_* dependency", 3),
                       ("no framebuffer", 1)]


def test_failures_list_build_errors_and_failed_tests():
    broken = res.TargetResult("malta", error="build failed: make failed", log=Path("/b/log"))
    failing = res.TargetResult("armv8", log=Path("/a/log"), tests=[
        res.TestCase("t::x", "failed", "assert 1 == 0"), res.TestCase("t::y", "passed")])
    assert res.failures([broken, failing]) == [
        ("malta", "(no test results)", "build failed: make failed", "/b/log"),
        ("armv8", "t::x", "assert 1 == 0", "/a/log")]
    assert res.table_rows([broken])[0][2:6] == ["-", "-", "-", "-"]


def test_fragments_devel_first_then_the_users():
    assert res.fragments(True, ["a.config", res.DEVEL_CONFIG]) == [res.DEVEL_CONFIG, "a.config"]
    assert res.fragments(False, []) == []


def test_pytest_command_line_is_barebox_makealls_plus_bbvs_plugin(tmp_path):
    argv = res.pytest_argv("py", tmp_path / "e.yaml", "test/py", tmp_path / "j.xml", "shell",
                           tmp_path / "c", ["-x"])
    assert argv[:5] == ["py", "-m", "pytest", "--lg-env", str(tmp_path / "e.yaml")]
    assert argv[-3:] == ["shell", "-x", "test/py"] and res.PLUGIN in argv
    assert "--junitxml" in argv
