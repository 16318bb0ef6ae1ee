"""bbv test end to end on the miniature barebox tree: `bbv build` makes the tiny guest
(tests/tinyguest) as the vexpress image, `bbv export labgrid` writes the environment, and
pytest with labgrid runs the tree's own test/py (tests/fixtures/minibarebox/test/py, a
conftest.py and test/strategy.py driving labgrid's QEMUDriver and a shell driver the tiny
guest answers) in real QEMU. Its pure logic: tests/unit/test_suite_logic.py; barebox's real suite:
tests/barebox/test_suite_barebox.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import BBV, bbv, need
from process_helpers import CROSS
from suite_helpers import FIXTURE, TINY_TESTS, leftovers, make_tree

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.testsuite import request as suite
from barebox_virtio_cli.testsuite import results as res

tools = need("make", "qemu-system-arm", f"{CROSS}gcc", f"{CROSS}as", f"{CROSS}objcopy")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tt"))


def error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("bbv: error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# --- end to end on the miniature tree ---------------------------------------------------------

@tools
@pytest.mark.qemu
def test_build_boot_and_run_the_trees_suite(tree, tmp_path):
    junit = tmp_path / "junit"
    done = bbv("test", "vexpress", "--src", str(tree), "--junit-dir", str(junit))
    assert done.returncode == 0, done.stderr + done.stdout
    row = next(line for line in done.stdout.splitlines() if "vexpress" in line)
    cells = [c.strip() for c in row.strip("│| ").split("│")]
    # target, build, passed, failed, skipped, xfailed, errors, wall
    assert cells[0] == "vexpress" and cells[1].endswith(" s") and cells[7].endswith(" s")
    assert cells[2:7] == ["6", "0", "3", "1", "0"]
    assert "3 skipped; most common: skipping test due to disabled CONFIG_* dependency (2); " \
           "modules feature not enabled for this board (1)" in done.stdout
    assert "failed:" not in done.stdout
    assert "bbv: vexpress: building" in done.stderr and "bbv: vexpress: booting" in done.stderr
    suite = ET.parse(junit / "vexpress.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == (str(TINY_TESTS), "0", "0", "4")
    build = tree / "build-vexpress"
    env_file = (build / res.EXPORT_NAME).read_text()
    assert "testfs" in env_file and "BareboxTestStrategy" in env_file
    assert (build / res.LOG_NAME).is_file() and not leftovers(tree)


@tools
@pytest.mark.qemu
def test_failing_test_gives_exit_1_and_json(tree):
    first = bbv("test", "vexpress", "--src", str(tree))  # the build the next runs reuse
    assert first.returncode == 0, first.stderr
    done = bbv("test", "vexpress", "--src", str(tree), "--no-build", "--json",
               env={"BBV_TINY_FAIL": "1"})
    assert done.returncode == 1, done.stderr
    [result] = json.loads(done.stdout)
    assert {k: result[k] for k in ("target", "passed", "failed", "skipped", "xfailed",
                                   "errors")} == \
        {"target": "vexpress", "passed": 5, "failed": 1, "skipped": 3, "xfailed": 1, "errors": 0}
    assert result["duration"] > 0 and len(result["tests"]) == TINY_TESTS
    outcomes = {t["name"]: t["outcome"] for t in result["tests"]}
    assert outcomes["test/py/test_tiny.py::test_fails_when_asked"] == "failed"
    assert outcomes["test/py/test_tiny.py::test_xfail"] == "xfailed"
    assert outcomes["test/py/test_tiny.py::test_needs_config[CONFIG_CMD_TLV]"] == "skipped"
    assert result["log"].endswith("build-vexpress/bbv-test.log")
    text = bbv("test", "vexpress", "--src", str(tree), "--no-build",
               env={"BBV_TINY_FAIL": "1"})
    assert text.returncode == 1
    assert "vexpress: test/py/test_tiny.py::test_fails_when_asked - " in text.stdout
    assert f"(log: {tree / 'build-vexpress' / 'bbv-test.log'})" in text.stdout


@tools
@pytest.mark.qemu
def test_keyword_and_pytest_args_after_dashes(tree):
    done = bbv("test", "vexpress", "--src", str(tree), "--json", "-k", "echo or false",
               "--", "-x", "-v")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert [t["name"] for t in result["tests"]] == [
        "test/py/test_tiny.py::test_echo", "test/py/test_tiny.py::test_status_of_false"]
    log = (tree / "build-vexpress" / res.LOG_NAME).read_text()
    assert "-k 'echo or false' -x -v test/py" in log
    # bbv export labgrid's status lines head the log: where the features came from
    assert "bbv: features: virtio-mmio, barebox-state, testfs (from barebox's " \
           "test/arm/dt-2nd@multi_v7_defconfig.yaml)" in log


@tools
@pytest.mark.qemu
def test_keyword_that_matches_nothing_fails(tree):
    """A typo in -k must not turn CI green: pytest's exit 5 (nothing ran) is a failure."""
    first = bbv("test", "vexpress", "--src", str(tree))  # the build --no-build reuses
    assert first.returncode == 0, first.stderr
    done = bbv("test", "vexpress", "--src", str(tree), "--no-build", "-k", "zzzznomatch")
    assert done.returncode == 1, done.stderr + done.stdout
    assert "no tests ran: -k 'zzzznomatch' matched none of the suite's tests" in done.stdout


@tools
@pytest.mark.qemu
def test_devel_is_merged_and_recorded(tmp_path):
    tree = make_tree(tmp_path, devel_config="CONFIG_VIRTIO_INPUT=y\n")
    done = bbv("test", "vexpress", "--src", str(tree), "--devel", "--kconfig-add", "CONFIG_NET=y",
               "-k", "true", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads((tree / "build-vexpress" / "bbv-build.json").read_text())
    assert record["kconfig"][-2:] == [res.DEVEL_CONFIG, "CONFIG_NET=y"]
    config = (tree / "build-vexpress" / ".config").read_text()
    assert "CONFIG_VIRTIO_INPUT=y" in config and "CONFIG_NET=y" in config
    # --no-build checks that the build has the fragments asked for
    done = bbv("test", "vexpress", "--src", str(tree), "--no-build", "--kconfig-add",
               "CONFIG_BROKEN=y")
    assert done.returncode == 1
    assert "lacks CONFIG_BROKEN=y; run without --no-build" in done.stderr


@tools
def test_build_failure_names_the_target_and_the_log(tmp_path):
    tree = make_tree(tmp_path, devel_config="CONFIG_BROKEN=y\n")
    done = bbv("test", "vexpress", "--src", str(tree), "--devel")
    assert done.returncode == 1
    log = tree / "build-vexpress" / "bbv-build.log"
    line = next(x for x in done.stderr.splitlines() if "build failed" in x)
    assert line.startswith("bbv: vexpress: build failed: make failed (exit status 2)")
    assert str(log) in line and log.is_file()
    assert f"(log: {log})" in done.stdout


@tools
@pytest.mark.qemu
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_pytest_and_qemu(tree, sig):
    assert bbv("test", "vexpress", "--src", str(tree), "-k", "echo").returncode == 0
    proc = subprocess.Popen([*BBV, "test", "vexpress", "--src", str(tree), "--no-build"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BBV_TINY_HANG": "1"})
    deadline = time.monotonic() + 60
    while not any("qemu-system" in p for p in leftovers(tree)):
        assert time.monotonic() < deadline and proc.poll() is None, "QEMU never started"
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert f"bbv: stopped by {sig.name}" in err and "Traceback" not in err
    assert not leftovers(tree)


# --- bad input -------------------------------------------------------------------------------

def test_usage_errors(tree, tmp_path):
    done = bbv("test", "--src", str(tree))
    assert done.returncode == 2 and "say which targets to test" in error_line(done)
    done = bbv("test", "vexpress", "--all", "--src", str(tree))
    assert done.returncode == 2 and "not both" in error_line(done)
    done = bbv("test", "vexprss", "--src", str(tree))
    assert done.returncode == 2 and "unknown target 'vexprss'" in error_line(done)
    done = bbv("test", "vexpress", "--src", str(tmp_path))
    assert done.returncode == 2 and "is not a barebox source tree" in error_line(done)
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old, ignore=shutil.ignore_patterns("test", "conftest.py"))
    done = bbv("test", "vexpress", "--src", str(old))
    assert done.returncode == 2 and "has no test suite (test/py" in error_line(done)
    done = bbv("test", "vexpress", "--src", str(tree), "-j", "0")
    assert done.returncode == 2


@tools
@pytest.mark.parametrize(("args", "needle"), [
    (["--blk", "missing.img"], "--blk missing.img: no such file"),
    (["--fs", "nodir"], "--fs nodir: nodir is not a directory"),
    (["-k", "bad(("], "-k 'bad((' is not a pytest -k expression"),
])
def test_bad_options_are_usage_errors_before_any_build(tmp_path, args, needle):
    tree = make_tree(tmp_path)
    done = bbv("test", "vexpress", "--src", str(tree), *args, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert error_line(done).startswith(f"bbv: error: {needle}")
    assert not (tree / "build-vexpress").exists()


@need("qemu-system-arm", "qemu-system-aarch64")
def test_console_path_is_one_target_and_parallel_runs_share_blk_read_only(tmp_path):
    tree = make_tree(tmp_path)
    (tmp_path / "a.img").write_bytes(bytes(4096))
    with pytest.raises(UsageError, match="--console /x/c is one socket; with several targets"):
        suite.make_request(tree, ("vexpress", "armv8"), False, devices=RunRequest(console="/x/c"))
    both = suite.make_request(tree, ("vexpress", "armv8"), False, jobs=2,
                              devices=RunRequest(blk=(str(tmp_path / "a.img"),), console=""))
    assert both.devices.snapshot and both.devices.console == ""
    one = suite.make_request(tree, ("vexpress",), False, jobs=2,
                             devices=RunRequest(blk=(str(tmp_path / "a.img"),), console="/x/c"))
    assert not one.devices.snapshot and one.devices.console == "/x/c"


def test_device_options_are_checked_before_labgrid(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "labgrid" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    tree = make_tree(tmp_path)
    with pytest.raises(UsageError, match="--blk missing.img: no such file"):
        suite.make_request(tree, ("vexpress",), False, devices=RunRequest(blk=("missing.img",)))
    with pytest.raises(BbvError, match="labgrid"):
        suite.make_request(tree, ("vexpress",), False, devices=RunRequest())


@need("qemu-system-arm")
def test_target_this_host_cannot_boot_points_at_doctor(tree, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = bbv("test", "malta", "--src", str(tree), env={"PATH": str(empty)})
    assert done.returncode == 1
    line = error_line(done)
    assert "this host cannot boot target 'malta': qemu-system-mips: not on PATH" in line
    assert line.endswith("'bbv doctor malta' lists what to install")


@need("qemu-system-arm")
def test_host_requirements_are_named_with_their_tests_before_any_build(tmp_path):
    """A tree whose suite has a test that needs mkimage, on a host (PATH) without it: bbv
    names that test and the package before it builds or boots anything."""
    tree = make_tree(tmp_path)
    (tree / "test" / "py" / "test_fit.py").write_text(
        "def test_fit_dryrun(barebox):\n    pass\n\n\ndef test_fit(barebox):\n    pass\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(shutil.which("qemu-system-arm"), bindir / "qemu-system-arm")
    done = bbv("test", "vexpress", "--src", str(tree), "--no-build", path=str(bindir))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    warning = "bbv: warning: mkimage not on PATH: test/py/test_fit.py (test_fit_dryrun, " \
              "test_fit) will be skipped; apt install u-boot-tools"
    assert warning in lines, done.stderr
    first_step = next(i for i, line in enumerate(lines) if line.startswith("bbv: vexpress:"))
    assert lines.index(warning) < first_step
    # what the tree's suite does not have (test_tlv.py) is not warned about
    assert "crcmod" not in done.stderr and "openssl" not in done.stderr


@tools
@pytest.mark.qemu
def test_full_merges_its_fragment_into_the_build_and_gives_the_target_its_extras(tmp_path):
    """--full on the miniature tree, real make: what its Kconfig defines reaches .config, the
    rest is named and dropped; vexpress gets the network feature and its framebuffer."""
    tree = make_tree(tmp_path)
    done = bbv("test", "vexpress", "--src", str(tree), "--full", "--json")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("bbv: --full: ")]
    assert "bbv: --full: CONFIG_CMD_BTHREAD is not in this tree's Kconfig: dropped (bthread)" \
        in notes
    assert not any("not in this tree:" in note for note in notes)  # it has CI's fragments
    build = tree / "build-vexpress-full"  # the usual build-vexpress is not touched
    assert not (tree / "build-vexpress").exists()
    config = (build / ".config").read_text().splitlines()
    for option in ("CONFIG_SELFTEST=y", "CONFIG_CMD_SELFTEST=y", "CONFIG_CMD_NVMEM=y",
                   "CONFIG_NVMEM_RMEM=y", "CONFIG_CMD_FBTEST=y", "CONFIG_NET=y"):
        assert option in config, option
    assert not any("BTHREAD" in line for line in config)
    record = json.loads((build / "bbv-build.json").read_text())
    assert "common/boards/configs/enable_self_test.config" in record["kconfig"]
    env = (build / res.EXPORT_NAME).read_text()
    assert "- network" in env and "-device ramfb" in env
    assert "machine: virt,highmem=off" in env
    assert "name=opt/org.barebox.env/nv/dev.fb0.enable,string=1" in env
    [result] = json.loads(done.stdout)
    outcomes = {t["name"].rpartition("::")[2]: t for t in result["tests"]}
    assert outcomes["test_xfail"]["outcome"] == "passed"  # the network feature is declared
    assert outcomes["test_missing_feature"] == {
        "name": "test/py/test_tiny.py::test_missing_feature", "outcome": "skipped",
        "reason": "modules feature not enabled for this board"}
    # --no-build finds what --full merged in the build; the text lists every skip's reason
    again = bbv("test", "vexpress", "--src", str(tree), "--full", "--no-build", "-k",
                "true or missing_feature")
    assert again.returncode == 0, again.stderr
    assert "1 skipped:\n  vexpress: test/py/test_tiny.py::test_missing_feature - modules " \
           "feature not enabled for this board" in again.stdout
    # pytest that ends with status 1 before any test ran is an error, not a green run
    broken = bbv("test", "vexpress", "--src", str(tree), "--full", "--no-build", "--json", "--",
                 "-p", "no_such_plugin_bbv")
    assert broken.returncode == 1
    assert "no_such_plugin_bbv" in json.loads(broken.stdout)[0]["error"]


def test_junit_dir_is_not_made_by_a_run_that_fails_before_any_test(tmp_path):
    tree = make_tree(tmp_path)
    junit = tmp_path / "new" / "x"
    done = bbv("test", "vexpress", "--src", str(tree), "--junit-dir", str(junit), "--no-build",
               cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert not (tmp_path / "new").exists()  # nothing made, nothing left
    blocked = tmp_path / "file"
    blocked.write_text("kept")
    with pytest.raises(UsageError, match=f"--junit-dir {blocked}/x: Not a directory"):
        suite.output_dir(blocked / "x", "--junit-dir")
    assert blocked.read_text() == "kept"
    assert suite.output_dir(junit, "--junit-dir") == junit and not junit.exists()
