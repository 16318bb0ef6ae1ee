"""Toolchain resolution with real cross compilers (Debian's gcc-arm-linux-gnueabihf and
gcc-aarch64-linux-gnu), reached through prefixes on a temporary PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, need

from barebox_virtio_cli.build.toolchain import (
    Finder,
    ProbeCache,
    explicit_candidates,
    machine_matches,
)
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets.catalog import load_catalog

ARM = "arm-linux-gnueabihf-gcc"
A64 = "aarch64-linux-gnu-gcc"
pytestmark = need(ARM, A64)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog([ROOT / "configs"])


def wrapper(directory: Path, name: str, real: str, log: Path | None = None) -> Path:
    """A compiler under another name: runs the real one (and notes each call in log)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    note = f'echo "$@" >> "{log}"\n' if log else ""
    path.write_text(f'#!/bin/sh\n{note}exec {shutil.which(real)} "$@"\n')
    path.chmod(0o755)
    return path


def finder(tmp_path: Path, env: dict[str, str], config: dict[str, str] | None = None) -> Finder:
    env = {"PATH": str(tmp_path / "bin"), **env}
    return Finder(env=env, cache=ProbeCache(tmp_path / "cache.json"), config=config or {},
                  fetched_root=tmp_path / "toolchains")


def test_machine_patterns_check_arch_and_bitness(catalog):
    vexpress, armv8 = catalog.get("vexpress"), catalog.get("armv8")
    assert machine_matches("arm-linux-gnueabihf", vexpress.gcc_machine)
    assert machine_matches("armv7l-unknown-linux-gnueabihf", vexpress.gcc_machine)
    assert not machine_matches("aarch64-linux-gnu", vexpress.gcc_machine)
    assert machine_matches("aarch64-linux", armv8.gcc_machine)
    assert not machine_matches("arm-linux-gnueabi", armv8.gcc_machine)
    assert not machine_matches("mipsel-linux-gnu", catalog.get("malta").gcc_machine)


def test_explicit_order_follows_makeall(catalog):
    env = {"CROSS_COMPILE": "c-", "CROSS_COMPILE_arm64": "b-",
           "CROSS_COMPILE_multi_v8_defconfig": "a-", "CROSS_COMPILE_arm": "not-for-v8-"}
    config = {"arm64": "e-", "multi_v8_defconfig": "d-"}
    got = explicit_candidates(catalog.get("armv8"), "multi_v8_defconfig", "cli-", env, config)
    assert [c.prefix for c in got] == ["cli-", "a-", "b-", "c-", "d-", "e-"]
    assert got[2].source == "$CROSS_COMPILE_arm64"
    # ARMv8 builds with ARCH=arm, but MAKEALL looks for the arm64 compiler variable.
    assert "not-for-v8-" not in [c.prefix for c in got]
    # A defconfig with dashes becomes a variable name with underscores, as in MAKEALL.
    dashed = explicit_candidates(catalog.get("malta"), "qemu-malta_defconfig", None,
                                 {"CROSS_COMPILE_qemu_malta_defconfig": "m-"}, {})
    assert [c.source for c in dashed] == ["$CROSS_COMPILE_qemu_malta_defconfig"]


def test_each_source_wins_over_the_ones_after_it(tmp_path, catalog):
    vexpress = catalog.get("vexpress")
    bin_dir = tmp_path / "bin"
    for name in ("cli-", "defc-", "arch-", "plain-", "conf-"):
        wrapper(bin_dir, f"{name}gcc", ARM)
    wrapper(tmp_path / "toolchains" / "gcc-15.2.0-nolibc-arm-linux-gnueabi" / "bin",
            "arm-linux-gnueabi-gcc", ARM)
    wrapper(bin_dir, ARM, ARM)
    env = {"CROSS_COMPILE_multi_v7_defconfig": "defc-", "CROSS_COMPILE_arm": "arch-",
           "CROSS_COMPILE": "plain-"}
    config = {"arm": "conf-"}
    expected = [("cli-", "--cross-compile"), ("defc-", "$CROSS_COMPILE_multi_v7_defconfig"),
                ("arch-", "$CROSS_COMPILE_arm"), ("plain-", "$CROSS_COMPILE"),
                ("conf-", "config file [cross_compile] arm")]
    cli: str | None = "cli-"
    for prefix, source in expected:
        found = finder(tmp_path, env, config).find(vexpress, "multi_v7_defconfig", cli)
        assert (found.prefix, found.source) == (prefix, source)
        assert found.info.machine == "arm-linux-gnueabihf"
        cli = None
        for key in list(env):
            if env[key] == prefix:
                del env[key]
        config = {} if prefix == "conf-" else config
    found = finder(tmp_path, env, config).find(vexpress, "multi_v7_defconfig")
    assert found.prefix.endswith("/gcc-15.2.0-nolibc-arm-linux-gnueabi/bin/arm-linux-gnueabi-")
    assert found.source.startswith("bbv toolchain fetch")
    shutil.rmtree(tmp_path / "toolchains")
    found = finder(tmp_path, env, config).find(vexpress, "multi_v7_defconfig")
    assert (found.prefix, found.source) == ("arm-linux-gnueabihf-", f"PATH ({bin_dir})")


def test_wrong_arch_cross_compile_is_refused(tmp_path, catalog):
    wrapper(tmp_path / "bin", A64, A64)
    wrapper(tmp_path / "bin", ARM, ARM)
    f = finder(tmp_path, {"CROSS_COMPILE": "aarch64-linux-gnu-"})
    with pytest.raises(BbvError) as err:
        f.find(catalog.get("vexpress"), "multi_v7_defconfig")
    message = str(err.value)
    assert "$CROSS_COMPILE='aarch64-linux-gnu-'" in message
    assert "aarch64-linux-gnu" in message and "32-bit" in message
    assert "not passed to make" in message
    # The other way round: ARMv8 needs a 64-bit compiler although ARCH=arm.
    f = finder(tmp_path, {"CROSS_COMPILE_arm64": "arm-linux-gnueabihf-"})
    with pytest.raises(BbvError, match="needs a compiler for aarch64 \\(64-bit, ARCH=arm\\)"):
        f.find(catalog.get("armv8"), "multi_v8_defconfig")


def test_named_compiler_that_does_not_exist_is_an_error(tmp_path, catalog):
    wrapper(tmp_path / "bin", ARM, ARM)
    f = finder(tmp_path, {"CROSS_COMPILE_arm": "/nonexistent/arm-none-eabi-"})
    with pytest.raises(BbvError, match="CROSS_COMPILE_arm.*arm-none-eabi-gcc not found"):
        f.find(catalog.get("vexpress"), "multi_v7_defconfig")


def test_search_finds_kernel_org_names_and_skips_wrong_arch(tmp_path, catalog):
    # A compiler named like an ARM one that builds for aarch64 is skipped, not used.
    wrapper(tmp_path / "bin", ARM, A64)
    wrapper(tmp_path / "bin", "arm-linux-gnueabi-gcc", ARM)
    found = finder(tmp_path, {}).find(catalog.get("vexpress"), "multi_v7_defconfig")
    assert found.prefix == "arm-linux-gnueabi-"
    assert found.info.machine == "arm-linux-gnueabihf"
    found = finder(tmp_path, {"CROSS_COMPILE": "ccache arm-linux-gnueabi-"}).find(
        catalog.get("vexpress"), "multi_v7_defconfig")
    assert found.prefix == "ccache arm-linux-gnueabi-"


def test_no_compiler_names_package_and_fetch(tmp_path, catalog):
    wrapper(tmp_path / "bin", ARM, A64)
    with pytest.raises(BbvError) as err:
        finder(tmp_path, {}).find(catalog.get("vexpress"), "multi_v7_defconfig")
    message = str(err.value)
    assert "gcc-arm-linux-gnueabihf" in message
    assert "bbv toolchain fetch vexpress" in message
    assert "skipped arm-linux-gnueabihf-gcc is aarch64-linux-gnu" in message


def test_probe_results_are_cached_until_the_compiler_changes(tmp_path, catalog):
    log = tmp_path / "calls"
    gcc = wrapper(tmp_path / "bin", ARM, ARM, log)
    vexpress = catalog.get("vexpress")
    finder(tmp_path, {}).find(vexpress, "multi_v7_defconfig")
    calls = log.read_text().splitlines()
    assert calls == ["-dumpmachine", "-dumpfullversion -dumpversion"]
    found = finder(tmp_path, {}).find(vexpress, "multi_v7_defconfig")
    real = subprocess.run([ARM, "-dumpfullversion"], capture_output=True, text=True).stdout
    assert found.info.version == real.strip()
    assert log.read_text().splitlines() == calls  # answered from the cache file
    stamp = gcc.stat().st_mtime_ns + 10**9
    os.utime(gcc, ns=(stamp, stamp))
    finder(tmp_path, {}).find(vexpress, "multi_v7_defconfig")
    assert len(log.read_text().splitlines()) == 4


def test_defconfig_outside_the_catalog_accepts_any_compiler_of_its_arch(tmp_path, catalog):
    from barebox_virtio_cli.build.kbuild import Plan
    from barebox_virtio_cli.build.service import _toolchain_target

    wrapper(tmp_path / "bin", A64, A64)
    wrapper(tmp_path / "bin", ARM, ARM)
    for bits, machine in ((64, "aarch64-linux-gnu"), (32, "arm-linux-gnueabihf")):
        target = _toolchain_target(catalog, Plan("arm", "imx_defconfig", None, "given"), bits)
        found = finder(tmp_path, {}).find(target, "imx_defconfig")
        assert found.info.machine == machine
    # Bitness unknown (a generated defconfig): a compiler the user names for the ARCH is fine.
    target = _toolchain_target(catalog, Plan("arm", "imx_defconfig", None, "given"), None)
    found = finder(tmp_path, {"CROSS_COMPILE": "aarch64-linux-gnu-"}).find(target, "imx_defconfig")
    assert found.info.machine == "aarch64-linux-gnu"


def test_image_listing_skips_intermediates_and_missing_firmware_placeholders(tmp_path):
    from barebox_virtio_cli.build.kbuild import images

    folder = tmp_path / "images"
    folder.mkdir()
    names = ["barebox-dt-2nd.img", "barebox-rk3568.img", "start_dt_2nd.pbl", "start.pblb",
             "pbl.lds", "piggy.o", "barebox.z", "barebox-imx8mp-evk.img.missing-firmware",
             ".barebox-dt-2nd.img.cmd"]
    for name in names:
        (folder / name).write_bytes(b"x")
    assert [p.name for p in images(tmp_path)] == ["barebox-dt-2nd.img", "barebox-rk3568.img"]
