"""`bbv test --ci` end to end on the miniature barebox tree, in real QEMU: the tree's own
workflow (tests/fixtures/minibarebox/.github/workflows/test-labgrid-pytest.yml: a multi_v7 job
whose glob holds an env the tiny guest answers, an env whose QEMU binary no host has and a board
env CI skips; a tinyos job with lgargs and an osimg), read, built once per defconfig with the
workflow's fragments, and tested with the tree's own yamls. Pure logic:
tests/unit/test_ci_logic.py; a real barebox CI job: tests/barebox/test_suite_barebox.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import BBV, bbv, error_line, need, one_line_error
from process_helpers import CROSS
from suite_helpers import FIXTURE, TINY_TESTS, leftovers, make_tree

tools = need("make", "qemu-system-arm", f"{CROSS}gcc", f"{CROSS}as", f"{CROSS}objcopy")
V7, TINYOS = "dt-2nd@multi_v7_defconfig", "tinyos_defconfig"
MISSING = "missing@multi_v7_defconfig"


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path)


def by_env(stdout: str) -> dict[str, dict]:
    return {r["env"]: r for r in json.loads(stdout)}


@tools
@pytest.mark.qemu
def test_every_job_one_build_each_with_the_workflows_fragments(tree, tmp_path):
    (tree / "tinyos.img").write_bytes(bytes(65536))  # the osimg CI would download
    junit = tmp_path / "junit"
    done = bbv("test", "--ci", "--src", str(tree), "--json", "-j", "2", "--junit-dir",
               str(junit))
    assert done.returncode == 0, done.stderr
    results = by_env(done.stdout)
    assert list(results) == [V7, MISSING, TINYOS]  # board@ has no QEMUDriver: CI skips it
    v7, missing, tinyos = results[V7], results[MISSING], results[TINYOS]
    assert {k: v7[k] for k in ("defconfig", "passed", "failed", "skipped", "xfailed",
                               "error")} == {"defconfig": "multi_v7_defconfig", "passed": 6,
                                             "failed": 0, "skipped": 3, "xfailed": 1,
                                             "error": None}
    assert len(v7["tests"]) == TINY_TESTS and v7["duration"] > 0
    # the job's lgargs (--runxfail) reach pytest: the xfail test passes
    assert (tinyos["passed"], tinyos["xfailed"]) == (7, 0)
    assert missing["ran"] is False
    assert missing["error"] == "not run: qemu-system-bbvnone: not on PATH"
    # one build per defconfig, CI's fragments in it: testfs only in the multi_v7 job's yamls
    assert sorted(p.name for p in tree.glob("build-*")) == [
        "build-ci-arm-multi_v7_defconfig", "build-ci-arm-tinyos_defconfig"]
    v7_config = (tree / "build-ci-arm-multi_v7_defconfig" / ".config").read_text()
    os_config = (tree / "build-ci-arm-tinyos_defconfig" / ".config").read_text()
    for option in ("CONFIG_SELFTEST=y", "CONFIG_DM_TEST=y", "CONFIG_TLV_SIG_TEST=y"):
        assert option in v7_config
    assert "CONFIG_SELFTEST=y" in os_config and "CONFIG_DM_TEST" not in os_config
    assert "# CONFIG_BAREBOXENV_TARGET is not set" in v7_config  # disable_target_tools
    record = json.loads((tree / "build-ci-arm-multi_v7_defconfig" / "bbv-build.json")
                        .read_text())
    assert record["kconfig"] == [f"common/boards/configs/{f}.config" for f in (
        "enable_self_test", "disable_target_tools", "enable_dm_testing", "enable_tlv_sig_testing")]
    assert done.stderr.count("building multi_v7_defconfig") == 1
    # JUnit as CI names it, and the labgrid console log per env
    assert sorted(p.name for p in junit.iterdir()) == [f"{V7}.tests.xml", f"{TINYOS}.tests.xml"]
    suite = ET.parse(junit / f"{V7}.tests.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == (str(TINY_TESTS), "0")
    assert any((tree / "build-ci-arm-multi_v7_defconfig" / "log" / V7).iterdir())
    log = (tree / "build-ci-arm-tinyos_defconfig" / f"bbv-ci-{TINYOS}.log").read_text()
    assert f"--lg-env {tree}/test/arm/tinyos_defconfig.yaml" in log
    assert "--verbosity=1 --runxfail test/py" in log


@tools
@pytest.mark.qemu
def test_a_failing_env_the_table_and_an_incremental_rebuild(tree):
    first = bbv("test", "--ci", "multi_v7_defconfig", "--src", str(tree))
    assert first.returncode == 0, first.stderr
    row = next(line for line in first.stdout.splitlines() if V7 in line)
    cells = [c.strip() for c in row.strip("│| ").split("│")]
    # job, env, build, passed, failed, skipped, xfailed, errors, time
    assert cells[:2] == ["multi_v7_defconfig", V7] and cells[2].endswith(" s")
    assert cells[3:8] == ["6", "0", "3", "1", "0"] and cells[8].endswith(" s")
    assert f"{MISSING}: (not run) - qemu-system-bbvnone: not on PATH" in first.stdout
    done = bbv("test", "--ci", "multi_v7", "--src", str(tree), "--no-build", "--json",
               env={"BBV_TINY_FAIL": "1"})
    assert done.returncode == 1, done.stderr
    v7 = by_env(done.stdout)[V7]
    assert (v7["passed"], v7["failed"], v7["build_seconds"]) == (5, 1, None)
    again = bbv("test", "--ci", "multi_v7", "--src", str(tree), "-k", "echo")
    assert again.returncode == 0
    build_log = (tree / "build-ci-arm-multi_v7_defconfig" / "bbv-build.log").read_text()
    assert "configuring" not in build_log  # the same fragments: incremental, no reconfigure


@tools
def test_host_requirements_of_testfs_tests_warned_only_for_jobs_with_testfs(tree):
    """The tlv tests need testfs: on a job none of whose yamls has it they skip, so an unmet
    requirement of theirs (here a tool that fails: the openssl probe sees exit 1) is not
    warned about; on the multi_v7 job (testfs) it is, before anything is built."""
    (tree / "test" / "py" / "test_tlv.py").write_text("def test_tlv_generator(barebox):\n"
                                                     "    pass\n")
    bindir = tree.parent / "bin"
    bindir.mkdir()
    (bindir / "openssl").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "openssl").chmod(0o755)
    path = f"{bindir}:{os.environ['PATH']}"
    warned = "test/py/test_tlv.py (test_tlv_generator) will"
    tinyos = bbv("test", "--ci", TINYOS, "--src", str(tree), "--no-build", path=path)
    assert tinyos.returncode != 0 and warned not in tinyos.stderr, tinyos.stderr
    v7 = bbv("test", "--ci", "multi_v7", "--src", str(tree), "--no-build", path=path)
    assert v7.returncode != 0 and warned in v7.stderr, v7.stderr


@tools
def test_list_names_what_each_env_lacks(tree):
    done = bbv("test", "--ci", "--list", "--json", "--src", str(tree))
    assert done.returncode == 0, done.stderr
    jobs = {j["job"]: j for j in json.loads(done.stdout)}
    assert list(jobs) == ["multi_v7_defconfig", "tinyos_defconfig"]
    v7, tinyos = jobs["multi_v7_defconfig"], jobs["tinyos_defconfig"]
    assert v7["not_tested"] == ["board@multi_v7_defconfig"]
    assert [(e["env"], e["runnable"]) for e in v7["envs"]] == [(V7, True), (MISSING, False)]
    assert v7["envs"][1]["missing"] == [{"item": "qemu-system-bbvnone", "detail": "not on PATH",
                                         "debian": ""}]
    assert (tinyos["lgargs"], tinyos["osimg"]) == ("--runxfail", "tinyos.img")
    assert tinyos["envs"][0]["missing"][0]["item"] == "tinyos.img"
    assert tinyos["fragments"] == ["common/boards/configs/enable_self_test.config",
                                   "common/boards/configs/disable_target_tools.config"]
    text = bbv("test", "--ci", "--list", "--src", str(tree))
    assert "enable_dm_testing.config enable_tlv_sig_testing.config (when a yaml uses testfs)" \
        in text.stdout
    assert not list(tree.glob("build-*"))  # --list builds nothing


def add_job(tree, defconfig: str, arch: str = "arm", config: str = "") -> None:
    """A matrix entry of the tree's workflow and its yaml (the dt-2nd env's); config: the
    defconfig file, when the tree has none."""
    workflow = tree / ".github" / "workflows" / "test-labgrid-pytest.yml"
    entry = (f"          - ARCH: {arch}\n            lgenv: test/{arch}/{defconfig}.yaml\n"
             f"            defconfig: {defconfig}\n\n")
    text = workflow.read_text()
    workflow.write_text(text.replace("    steps:", entry + "    steps:", 1))
    (tree / "test" / arch).mkdir(exist_ok=True)
    shutil.copy(tree / "test" / "arm" / f"{V7}.yaml", tree / "test" / arch / f"{defconfig}.yaml")
    if config:
        (tree / "arch" / arch / "configs" / defconfig).write_text(config)


@tools
def test_a_job_whose_build_fails_says_the_compiler_error_in_one_line(tree):
    """As multi_v8_efi_defconfig with Debian 12's GCC 12 (-Werror): not run, never passed."""
    add_job(tree, "werror_defconfig", config='CONFIG_IMAGE="barebox-dt-2nd.img"\n'
            'CONFIG_OTHER_IMAGES="barebox-other.img"\nCONFIG_BROKEN=y\n')  # compiles broken.c
    done = bbv("test", "--ci", "werror_defconfig", "--json", "--src", str(tree))
    assert done.returncode == 1, done.stderr
    result = by_env(done.stdout)["werror_defconfig"]
    assert result["ran"] is False and result["passed"] == 0
    assert result["error"].startswith("build failed: common/broken.c:4:")
    assert "'undeclared_symbol' undeclared" in result["error"].replace("‘", "'").replace(
        "’", "'")
    assert result["error"].endswith("s)") and "\n" not in result["error"]
    assert result["log"].endswith("build-ci-arm-werror_defconfig/bbv-build.log")
    assert f"werror_defconfig: {result['error']}" in done.stderr


@tools
def test_list_names_the_host_tools_a_build_runs(tree, tmp_path):
    """A defconfig with CONFIG_BAREBOX_LOGO (barebox's sandbox_defconfig) needs ImageMagick's
    convert: a convert that is not ImageMagick's (GraphicsMagick's, or a stand-in) is named
    with the Debian package that brings the real one."""
    add_job(tree, "logo_defconfig", config='CONFIG_IMAGE="barebox-dt-2nd.img"\n'
                                           "CONFIG_BAREBOX_LOGO=y\n")
    other = tmp_path / "bin"
    other.mkdir()
    (other / "convert").write_text("#!/bin/sh\necho 'GraphicsMagick 1.4'\n")
    (other / "convert").chmod(0o755)
    done = bbv("test", "--ci", "--list", "--json", "--src", str(tree),
               env={"PATH": f"{other}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    jobs = {j["job"]: j for j in json.loads(done.stdout)}
    logo = jobs["logo_defconfig"]["envs"][0]
    assert not logo["runnable"]
    assert [(m["item"], m["debian"]) for m in logo["missing"]] == [
        ("ImageMagick's convert", "imagemagick"), ("an SVG renderer for convert", "librsvg2-bin")]
    assert f"{other}/convert is not ImageMagick's convert" in logo["missing"][0]["detail"]
    assert "CONFIG_BAREBOX_LOGO: lib/logo/Makefile" in logo["missing"][0]["detail"]
    assert jobs["multi_v7_defconfig"]["envs"][0]["runnable"]  # no logo: convert not asked for
    done = bbv("doctor", "--ci", "--src", str(tree),
               env={"PATH": f"{other}:{os.environ['PATH']}"})
    assert done.returncode == 1
    assert "apt install imagemagick librsvg2-bin" in done.stdout.replace("\n", " ")


@tools
def test_bad_input_one_line_each(tree, tmp_path):
    done = bbv("test", "--ci", "multi_v9_defconfig", "--src", str(tree))
    assert "no CI job 'multi_v9_defconfig' in the workflow's matrix; did you mean " \
           "multi_v7_defconfig" in error_line(done, 2)
    done = bbv("test", "--ci", "tinyos_defconfig", "--src", str(tree))
    line = error_line(done, 1)
    assert "CI job tinyos_defconfig: this host can run none of its envs (tinyos_defconfig: " \
           "tinyos.img: OS image not in the tree" in line
    done = bbv("test", "--ci", "--src", str(tmp_path))
    assert "is not a barebox source tree" in error_line(done, 2)
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old, ignore=shutil.ignore_patterns(".github"))
    done = bbv("test", "--ci", "--src", str(old))
    assert "has no .github/workflows/test-labgrid-pytest.yml" in error_line(done, 2)
    assert "test with 'bbv test TARGET'" in error_line(done, 2)
    (old / ".github" / "workflows" / "test-labgrid-pytest.yml").mkdir(parents=True)
    done = bbv("test", "--ci", "--src", str(old))
    assert "test-labgrid-pytest.yml is a directory, not barebox's CI workflow file" in \
        error_line(done, 2)
    done = bbv("test", "--list", "--src", str(tree))
    assert "--list belongs to --ci" in error_line(done, 2)
    done = bbv("test", "--ci", "--rng", "--src", str(tree))
    assert "device options does not go with it" in error_line(done, 2)
    blocked = tmp_path / "results"
    blocked.write_text("not a directory")
    done = bbv("test", "--ci", "multi_v7", "--junit-dir", str(blocked / "junit"), "--src",
               str(tree))
    assert f"--junit-dir {blocked / 'junit'}: Not a directory" in one_line_error(done, 2)
    assert blocked.read_text() == "not a directory"
    assert not list(tree.glob("build-*"))


@tools
def test_doctor_ci_lists_the_envs_and_exits_1_for_one_it_cannot_run(tree):
    done = bbv("doctor", "--ci", "--json", "--src", str(tree))
    assert done.returncode == 1, done.stderr
    envs = {e["env"]: e for e in json.loads(done.stdout)["envs"]}
    assert list(envs) == [V7, MISSING, TINYOS]
    assert envs[V7]["runnable"] and not envs[MISSING]["runnable"]
    assert envs[TINYOS]["missing"][0]["item"] == "tinyos.img"
    (tree / "tinyos.img").write_bytes(b"")
    done = bbv("doctor", "--ci", "--src", str(tree))
    assert done.returncode == 1 and "qemu-system-bbvnone: not on PATH" in done.stdout
    # why it exits 1, on stderr: the one env this host cannot run and what it lacks
    assert done.stderr == f"bbv: 1 of 3 CI envs cannot run on this host: {MISSING} " \
        "(qemu-system-bbvnone)\n"
    assert "--src belongs to --ci" in error_line(bbv("doctor", "--src", str(tree)), 2)


@tools
@pytest.mark.qemu
def test_signal_stops_the_env_runs_and_their_qemu(tree):
    assert bbv("test", "--ci", "multi_v7", "--src", str(tree), "-k", "echo").returncode == 0
    proc = subprocess.Popen([*BBV, "test", "--ci", "multi_v7", "--src", str(tree), "--no-build"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BBV_TINY_HANG": "1"})
    deadline = time.monotonic() + 60
    while not any("qemu-system" in p for p in leftovers(tree)):
        assert time.monotonic() < deadline and proc.poll() is None, "QEMU never started"
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "bbv: stopped by SIGTERM" in err and "Traceback" not in err
    assert not leftovers(tree)
