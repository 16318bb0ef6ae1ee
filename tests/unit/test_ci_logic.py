"""Pure logic of `bbv test --ci`: the workflow reader on copies of barebox's real
.github/workflows/test-labgrid-pytest.yml from six releases (tests/fixtures/ci-workflows, CI
configuration, not barebox code), the envs' needs, and the results. End to end in real QEMU:
tests/integration/test_ci.py."""

from __future__ import annotations

import pytest
from conftest import ROOT

from barebox_virtio_cli.ci import envs as ci_envs
from barebox_virtio_cli.ci import results as cr
from barebox_virtio_cli.ci.workflow import KNOWN, CiJob, WorkflowError, read_workflow, select
from barebox_virtio_cli.testsuite import results as res

pytestmark = pytest.mark.pure

WORKFLOWS = ROOT / "tests" / "fixtures" / "ci-workflows"
C = "common/boards/configs/"
SELF, TOOLS = C + "enable_self_test.config", C + "disable_target_tools.config"
DM, TLV = C + "enable_dm_testing.config", C + "enable_tlv_sig_testing.config"


def workflow(release: str):
    return read_workflow((WORKFLOWS / f"{release}.yml").read_text())


@pytest.mark.parametrize(("release", "jobs"), [
    ("v2023.06.0", 5), ("v2024.07.0", 8), ("v2025.05.0", 11), ("v2025.10.0", 11),
    ("v2025.12.0", 11), ("v2026.06.0", 15)])
def test_every_release_has_a_matrix_with_multi_v7_first(release, jobs):
    read = workflow(release)
    assert len(read.jobs) == jobs and not read.notes
    assert read.jobs[0] in (
        CiJob("arm", "test/arm/*@multi_v7_defconfig.yaml", "multi_v7_defconfig"),
        CiJob("arm", "test/arm/*@multi_v5_v6_defconfig.yaml", "multi_v5_v6_defconfig"))


def test_v2026_06_matrix_entries_with_lgargs_and_osimg():
    jobs = {j.defconfig: j for j in workflow("v2026.06.0").jobs}
    assert jobs["multi_v8_defconfig"].lgargs == "--runxfail"
    assert jobs["multi_v8_efiloader_defconfig"].osimg == "debian-13.5.0-arm64-netinst.iso"
    assert jobs["rv64i_defconfig"] == CiJob("riscv", "test/riscv/qemu-virt64@rv64i_defconfig.yaml",
                                          "rv64i_defconfig")
    assert jobs["allyesconfig"].arch == "sandbox"
    assert jobs["multi_v7_defconfig"].build_name == "build-arm-multi_v7_defconfig"


def test_v2026_06_fragment_rules():
    read = workflow("v2026.06.0")
    v7 = CiJob("arm", "test/arm/*@multi_v7_defconfig.yaml", "multi_v7_defconfig")
    assert read.fragments(v7, {"testfs"}) == [SELF, TOOLS, DM, TLV]
    assert read.fragments(v7, set()) == [SELF, TOOLS]
    yes = CiJob("sandbox", "test/sandbox/allyesconfig.yaml", "allyesconfig")
    assert read.fragments(yes, set()) == [SELF, TOOLS, "CONFIG_CONSOLE_DISABLE_INPUT=n",
                                          "CONFIG_MALLOC_LIBC=y"]
    assert read.drivers == ["QEMUDriver", "ExternalConsoleDriver"]
    assert read.pytest_args == ["--verbosity=1"] and read.features() == ["testfs"]
    assert read.steps_not_followed == []
    assert read.rules == KNOWN.rules  # the fallback is what the newest release says


def test_older_releases_fragment_rules():
    v7 = CiJob("arm", "x", "multi_v7_defconfig")
    assert workflow("v2025.10.0").fragments(v7, {"testfs"}) == [SELF, TOOLS, DM]
    assert workflow("v2025.10.0").steps_not_followed == [
        "Populate testfs",
        "Build: cp /usr/share/qemu/opensbi-riscv32-generic-fw_dynamic.bin ${KBUILD_OUTPUT}/"]
    assert workflow("v2023.06.0").steps_not_followed[0] == "Build: ./test/generate-dummy-fw.sh"
    # before KCONFIG_ADD: MAKEALL -k options, once under test/kconfig/
    assert workflow("v2024.07.0").fragments(v7, {"testfs"}) == [SELF, TOOLS]
    assert workflow("v2023.06.0").fragments(v7, set()) == [
        "test/kconfig/enable_self_test.kconf", "test/kconfig/disable_target_tools.kconf"]
    assert workflow("v2024.07.0").drivers == ["QEMUDriver"]
    assert workflow("v2023.06.0").drivers == []  # every yaml of the glob is tested


def test_unreadable_build_step_falls_back_and_says_so():
    text = (WORKFLOWS / "v2026.06.0.yml").read_text().replace("KCONFIG_ADD", "FRAGS")
    read = read_workflow(text)
    assert read.rules == KNOWN.rules
    assert read.notes == ["no config fragments found in the workflow's Build step; using the "
                          "rules of barebox v2026.06: enable_self_test.config "
                          "disable_target_tools.config (always); CONFIG_CONSOLE_DISABLE_INPUT=n "
                          "CONFIG_MALLOC_LIBC=y (for sandbox allyesconfig); "
                          "enable_dm_testing.config enable_tlv_sig_testing.config (when a yaml "
                          "uses testfs)"]


@pytest.mark.parametrize(("text", "error"), [
    ("a: [", "not valid YAML"), ("name: x\n", "no jobs"),
    ("jobs:\n  a:\n    steps: []\n", "no job with a strategy matrix"),
    ("jobs:\n  a:\n    strategy:\n      matrix:\n        include:\n          - ARCH: arm\n",
     r"without lgenv or defconfig: \{'arch': 'arm'\}"),
    ("jobs:\n  a:\n    strategy:\n      matrix:\n        include:\n          - ARCH: arm\n"
     "            lgenv: x\n", "without defconfig: ")])
def test_no_matrix_is_an_error(text, error):
    with pytest.raises(WorkflowError, match=error):
        read_workflow(text)


def test_select_jobs_by_defconfig_with_close_matches():
    jobs = workflow("v2026.06.0").jobs
    assert [j.defconfig for j in select(jobs, ["rv64i", "multi_v7_defconfig"])] == [
        "multi_v7_defconfig", "rv64i_defconfig"]  # matrix order
    assert select(jobs, []) == jobs
    with pytest.raises(ValueError, match="no CI job 'multi_v9_defconfig' in the workflow's "
                                         "matrix; did you mean multi_v8_defconfig"):
        select(jobs, ["multi_v9_defconfig"])


# --- envs ------------------------------------------------------------------------------------

X86 = """targets:
  main:
    drivers:
      QEMUDriver:
        qemu_bin: qemu-system-x86_64
        machine: pc
        extra_args: '-bios OVMF.fd'
      BareboxDriver: {}
    features:
      - pci
"""


def facts(**changes) -> ci_envs.EnvFacts:
    base = dict(qemu={"qemu-system-x86_64": "/usr/bin/qemu-system-x86_64"},
                machines={"qemu-system-x86_64": ["pc", "q35"]},
                firmware={"OVMF.fd": "/usr/share/qemu/OVMF.fd"}, osimg=False,
                osimg_hint="CI downloads it", toolchain=None, build_tools=[],
                qemu_packages={"qemu-system-x86_64": "qemu-system-x86"},
                firmware_packages={"OVMF.fd": "ovmf"})
    return ci_envs.EnvFacts(**{**base, **changes})


def test_env_parse_and_what_ci_tests():
    import yaml

    env = ci_envs.parse_env("test/x86/efi_defconfig.yaml", X86, yaml.safe_load(X86))
    assert (env.name, env.qemu_bin, env.machine, env.firmware) == (
        "efi_defconfig", "qemu-system-x86_64", "pc", ["OVMF.fd"])
    assert env.tested_by_ci(["QEMUDriver", "ExternalConsoleDriver"]) and env.uses("pci")
    assert not env.uses("testfs") and not env.tested_by_ci(["ExternalConsoleDriver"])
    assert ci_envs.bios_files("-bios /abs/OVMF.fd -M pc") == []


def test_what_the_host_lacks():
    import yaml

    env = ci_envs.parse_env("test/x86/efi_defconfig.yaml", X86 + "# debian.iso\n",
                            yaml.safe_load(X86))
    job = CiJob("x86", env.path, "efi_defconfig", osimg="debian.iso")
    assert ci_envs.missing(env, job, facts(osimg=True)) == []
    lacks = ci_envs.missing(env, job, facts(qemu={}, firmware={}))
    assert [str(m) for m in lacks] == [
        "qemu-system-x86_64: not on PATH (Debian: qemu-system-x86)",
        "OVMF.fd: firmware not in QEMU's data directories (Debian: ovmf)",
        "debian.iso: OS image not in the tree; CI downloads it"]
    old = ci_envs.missing(env, job, facts(osimg=True, machines={"qemu-system-x86_64": ["q35"]}))
    assert [m.detail for m in old] == ["this QEMU has no machine 'pc'"]
    compiler = ci_envs.Missing("cross compiler", "none found", "gcc")
    assert ci_envs.missing(env, job, facts(osimg=True, toolchain=compiler)) == [compiler]


RISCV32 = """targets:
  main:
    drivers:
      QEMUDriver:
        qemu_bin: qemu-system-riscv32
        machine: virt
        kernel: barebox-dt-2nd.img
"""
OPENSBI32 = "opensbi-riscv32-generic-fw_dynamic.bin"


def test_firmware_qemu_loads_without_bios():
    """barebox's virt32 yaml gives no -bios, so QEMU loads its own 32-bit OpenSBI, which
    Debian does not ship: the env cannot run, and --list says why."""
    import yaml

    env = ci_envs.parse_env("test/riscv/qemu@virt32_defconfig.yaml", RISCV32,
                            yaml.safe_load(RISCV32))
    defaults = {("qemu-system-riscv32", "virt"): OPENSBI32}
    assert not env.bios and ci_envs.default_firmware(env, defaults) == OPENSBI32
    env.default_firmware = OPENSBI32
    job = CiJob("riscv", env.path, "virt32_defconfig")
    here = facts(qemu={"qemu-system-riscv32": "/usr/bin/qemu-system-riscv32"}, machines={},
                 firmware={OPENSBI32: None}, firmware_packages={OPENSBI32: ""})
    assert [str(m) for m in ci_envs.missing(env, job, here)] == [
        f"{OPENSBI32}: what qemu-system-riscv32 -M virt loads without -bios, not in QEMU's "
        "data directories (Debian does not package it)"]
    assert ci_envs.missing(env, job, facts(**{**here.__dict__, "firmware": {
        OPENSBI32: "/usr/share/qemu/" + OPENSBI32}})) == []
    given = RISCV32.replace("        kernel:", "        bios: fw.bin\n        kernel:")
    env = ci_envs.parse_env("a.yaml", given, yaml.safe_load(given))
    assert env.bios and ci_envs.default_firmware(env, defaults) == ""
    x86 = ci_envs.parse_env("b.yaml", X86, yaml.safe_load(X86))  # -bios in extra_args
    assert x86.bios and ci_envs.default_firmware(x86, {("qemu-system-x86_64", "pc"): "x"}) == ""
    assert ci_envs.bios_files("-bios none -M virt") == []


LOGO = {"config": "CONFIG_BAREBOX_LOGO", "name": "ImageMagick's convert",
        "why": "lib/logo renders the SVG", "debian": "imagemagick"}
KEYTOC = {"config": "CONFIG_KEYTOC", "name": "pkg-config", "why": "keytoc", "debian": "pkg-config"}


def test_host_tools_a_build_runs():
    """sandbox_defconfig sets CONFIG_BAREBOX_LOGO, whose images ImageMagick renders; the tlv
    fragment sets CONFIG_KEYTOC; allyesconfig sets every option."""
    options = ci_envs.config_options(["CONFIG_BAREBOX_LOGO=y\n# CONFIG_X is not set\n",
                                      "CONFIG_KEYTOC=n\nCONFIG_NAME=\"x\"\n"])
    assert options == {"CONFIG_BAREBOX_LOGO", "CONFIG_NAME"}
    problems = {"ImageMagick's convert": "/usr/local/bin/convert is not ImageMagick's convert",
                "pkg-config": "no pkg-config on PATH"}
    lacks = ci_envs.build_missing([LOGO, KEYTOC], options, problems)
    assert [str(m) for m in lacks] == [
        "ImageMagick's convert: /usr/local/bin/convert is not ImageMagick's convert; "
        "CONFIG_BAREBOX_LOGO: lib/logo renders the SVG (Debian: imagemagick)"]
    assert [m.package for m in ci_envs.build_missing([LOGO, KEYTOC], None, problems)] == [
        "imagemagick", "pkg-config"]  # allyesconfig
    assert ci_envs.build_missing([LOGO], options, {"ImageMagick's convert": None}) == []
    env = ci_envs.parse_env("test/sandbox/sandbox_defconfig.yaml", "", None)
    job = CiJob("sandbox", env.path, "sandbox_defconfig")
    assert ci_envs.missing(env, job, facts(build_tools=lacks)) == lacks


# --- results ---------------------------------------------------------------------------------

def ran(env: str, *outcomes: str, error: str = "") -> cr.EnvResult:
    tests = [res.TestCase(f"t{i}", o) for i, o in enumerate(outcomes)]
    return cr.EnvResult("multi_v7_defconfig", env, res.TargetResult(env, build_seconds=12.0,
                                                                duration=3.0, tests=tests,
                                                                error=error))


def test_json_table_and_exit_status():
    results = [ran("dt-2nd@multi_v7_defconfig", "passed", "skipped", "xfailed", "error"),
               cr.EnvResult("multi_v7_defconfig", "a9@multi_v7_defconfig", None,
                            "qemu-system-arm: not on PATH")]
    first, second = cr.to_json(results)
    assert {k: first[k] for k in ("env", "defconfig", "passed", "failed", "skipped", "xfailed",
                                  "errors", "ran", "error")} == {
        "env": "dt-2nd@multi_v7_defconfig", "defconfig": "multi_v7_defconfig", "passed": 1,
        "failed": 0, "skipped": 1, "xfailed": 1, "errors": 1, "ran": True, "error": None}
    assert first["tests"][3] == {"name": "t3", "outcome": "error"}
    assert second["ran"] is False and second["error"] == "not run: qemu-system-arm: not on PATH"
    assert cr.table_rows(results) == [
        ["multi_v7_defconfig", "dt-2nd@multi_v7_defconfig", "12.0 s", "1", "0", "1", "1", "1",
         "3.0 s"],
        ["multi_v7_defconfig", "a9@multi_v7_defconfig", "not run", "-", "-", "-", "-", "-", "-"]]
    assert cr.exit_status(results) == 1  # an error is not a pass
    assert cr.exit_status([ran("a", "passed"), results[1]]) == 0  # not runnable: not counted
    assert cr.exit_status([results[1]]) == 1  # nothing ran
    assert cr.exit_status([ran("a", error="build failed: x")]) == 1


def test_a_failed_build_in_one_line():
    """multi_v8_efi_defconfig with Debian 12's GCC 12: the compiler's error, not make's."""
    errors = ["/src/bb/efi/runtime/efi_var_mem.c:267:32: error: 'var_to' may be used "
              "uninitialized [-Werror=maybe-uninitialized]",
              "make[3]: *** [/src/bb/scripts/Makefile.build:170: efi/runtime/efi_var_mem.o] "
              "Error 1"]
    how = "make failed (exit status 2) after 300 s; full output in /b/bbv-build.log"
    assert cr.build_failure(errors, how, "/src/bb") == (
        "build failed: efi/runtime/efi_var_mem.c:267:32: error: 'var_to' may be used "
        "uninitialized [-Werror=maybe-uninitialized] (make failed (exit status 2) after 300 s)")
    assert cr.build_failure(errors[1:], how, "/src/bb/") == (
        "build failed: make[3]: *** [scripts/Makefile.build:170: efi/runtime/efi_var_mem.o] "
        "Error 1 (make failed (exit status 2) after 300 s)")
    assert cr.build_failure([], how, "/src/bb") == (
        "build failed: make failed (exit status 2) after 300 s")
    failed = ran("multi_v8_efi_defconfig", error=cr.build_failure(errors, how, "/src/bb"))
    assert cr.to_json([failed])[0]["ran"] is False and cr.exit_status([failed]) == 1
    assert cr.table_rows([failed])[0][2:8] == ["failed", "-", "-", "-", "-", "-"]
