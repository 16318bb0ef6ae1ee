"""bbv doctor: the pure checks from given facts, and the command on this host with all tools
and with a PATH that holds only some of them (symlinks to the real programs)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, bbv, need

from barebox_virtio_cli.doctor.checks import (
    TargetFacts,
    Verdict,
    build_need_checks,
    host_checks,
    install_hints,
    target_checks,
    verdict,
)
from barebox_virtio_cli.doctor.host import packages
from barebox_virtio_cli.targets.catalog import load_catalog

# Loaded when a test first asks (with the test's private bbv dirs), not at import.
catalog = functools.cache(load_catalog)
pkgs = functools.cache(packages)
TARGET_NAMES = sorted(p.stem for p in (ROOT / "configs").glob("*.toml"))


@pytest.mark.pure
def test_package_data_covers_every_catalog_target():
    for target in catalog().targets.values():
        assert target.qemu in pkgs().programs, target.name
        assert target.gcc_machine[0] in pkgs().toolchains, target.name
        if target.firmware:
            assert target.firmware_package in pkgs().firmware, target.name
    for name in [*pkgs().build, *pkgs().optional]:
        assert set(pkgs().programs[name]) == {"debian", "fedora"}, name


@pytest.mark.pure
def test_missing_qemu_and_compiler_name_both_distributions():
    malta = catalog().get("malta")
    checks = target_checks(malta, TargetFacts(toolchain_error="no compiler"), pkgs())
    by_item = {c.item: c for c in checks}
    assert not by_item["qemu-system-mips"].ok
    assert by_item["qemu-system-mips"].packages == {"debian": "qemu-system-mips",
                                                    "fedora": "qemu-system-mips"}
    assert by_item["cross compiler"].packages["debian"] == "gcc-mips-linux-gnu"
    assert by_item["cross compiler"].detail == "no compiler"
    assert verdict([], checks) == Verdict(build=False, boot=False)


@pytest.mark.pure
def test_missing_ovmf_blocks_boot_but_not_build():
    efi = catalog().get("x86-efi")
    facts = TargetFacts(qemu_path="/q", qemu_version=(7, 2, 0), toolchain="gcc")
    checks = target_checks(efi, facts, pkgs())
    firmware = next(c for c in checks if c.item == "firmware")
    assert not firmware.ok and firmware.packages == {"debian": "ovmf", "fedora": "edk2-ovmf"}
    result = verdict([], checks)
    assert result.build and not result.boot


@pytest.mark.pure
def test_qemu_without_the_machine_cannot_boot():
    facts = TargetFacts(qemu_path="/q", qemu_version=(7, 2, 0), machine_known=False,
                        toolchain="gcc")
    checks = target_checks(catalog().get("vexpress"), facts, pkgs())
    assert "no machine 'virt'" in checks[0].detail
    assert not verdict([], checks).boot


@pytest.mark.pure
def test_riscv32_firmware_that_no_distribution_packages_points_at_firmware_option():
    facts = TargetFacts(qemu_path="/q", qemu_version=(7, 2, 0), toolchain="gcc")
    firmware = [c for c in target_checks(catalog().get("riscv32"), facts, pkgs())
                if c.item == "firmware"][0]
    assert not firmware.ok and "--firmware" in firmware.detail


@pytest.mark.pure
def test_host_tools_missing_optional_ones_do_not_fail_a_verdict():
    programs = {name: f"/usr/bin/{name}" for name in pkgs().build}
    host = host_checks(programs, pkgs())
    assert verdict(host, []).build
    missing = [c for c in host if not c.ok]
    assert {c.item for c in missing} == set(pkgs().optional)
    assert "socat" in install_hints(missing)["debian"]
    host = host_checks({**programs, "bison": None}, pkgs())
    assert not verdict(host, []).build
    assert install_hints(host)["fedora"].startswith("dnf install ")
    assert "bison" in install_hints(host)["fedora"].split()


@pytest.mark.pure
def test_build_tools_some_configs_need_are_shown_but_never_fail_a_verdict():
    needs = pkgs().build_need
    problems = {need["name"]: None for need in needs}
    problems["pkg-config"] = "no pkg-config on PATH"
    checks = build_need_checks(needs, problems)
    assert [c.item for c in checks] == [need["name"] for need in needs]
    missing = [c for c in checks if not c.ok]
    assert [(c.item, c.needed_for) for c in missing] == [("pkg-config",
                                                          "build with CONFIG_KEYTOC")]
    assert missing[0].detail.startswith("no pkg-config on PATH; scripts/keytoc finds libcrypto")
    assert install_hints(checks) == {"debian": "apt install pkg-config",
                                     "fedora": "dnf install pkgconf-pkg-config"}
    assert verdict(checks, []) == Verdict(build=True, boot=True)


def _doctor(args: list[str], path: str | None = None) -> subprocess.CompletedProcess:
    return bbv("doctor", *args, path=path)


@need("qemu-system-arm", "arm-linux-gnueabihf-gcc", "make", "gcc", "bison", "flex", "lz4", "xz")
def test_doctor_on_this_host_finds_everything_for_vexpress():
    done = _doctor(["vexpress", "--json"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["targets"]["vexpress"]
    assert result["build"] and result["boot"]
    qemu = next(c for c in result["checks"] if c["item"] == "qemu-system-arm")
    version = subprocess.run(["qemu-system-arm", "--version"], capture_output=True,
                             text=True).stdout.split()[3]
    assert qemu["summary"] == version


def _path_with(tmp_path, names: list[str]) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in names:
        os.symlink(shutil.which(name), bindir / name)
    return str(bindir)


@need("qemu-system-arm", "arm-linux-gnueabihf-gcc", "make", "gcc", "bison", "flex", "lz4", "xz")
def test_doctor_with_only_some_tools_names_the_missing_packages(tmp_path):
    # QEMU and the host tools, but no cross compiler and no bison.
    path = _path_with(tmp_path, ["qemu-system-arm", "make", "gcc", "flex", "lz4", "xz"])
    done = _doctor(["vexpress", "--json"], path)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["targets"]["vexpress"] == {**data["targets"]["vexpress"],
                                           "build": False, "boot": True}
    compiler = next(c for c in data["targets"]["vexpress"]["checks"]
                    if c["item"] == "cross compiler")
    assert compiler["packages"] == {"debian": "gcc-arm-linux-gnueabihf",
                                    "fedora": "gcc-arm-linux-gnu"}
    bison = next(c for c in data["host"] if c["item"] == "bison")
    assert not bison["ok"] and bison["packages"]["debian"] == "bison"
    # mkfs.vfat, sfdisk and veritysetup are also looked for in /usr/sbin and /sbin, where
    # Debian puts them; cpio, openssl and mkimage are what barebox's test suite runs; the
    # last five are what a build runs when its config sets an option (build_need).
    assert data["install"]["debian"].split()[2:] == sorted(
        {"bison", "ccache", "gcc-arm-linux-gnueabihf", "mtools", "socat", "cpio", "openssl",
         "u-boot-tools", "imagemagick", "librsvg2-bin", "pkg-config", "libssl-dev",
         "libusb-1.0-0-dev"})
    suite = {c["item"]: c for c in data["suite"]}
    assert not suite["mkimage"]["ok"] and suite["mkimage"]["packages"]["debian"] == "u-boot-tools"
    assert "test/py/test_fit.py skipped" in suite["mkimage"]["detail"]


@need("arm-linux-gnueabihf-gcc", "make", "gcc", "bison", "flex", "lz4", "xz")
def test_doctor_without_qemu_cannot_boot_and_the_table_says_what_to_install(tmp_path):
    path = _path_with(tmp_path, ["arm-linux-gnueabihf-gcc", "make", "gcc", "bison", "flex",
                                 "lz4", "xz"])
    done = _doctor(["vexpress"], path)
    assert done.returncode == 1
    assert "qemu-system-arm: not on PATH (Debian/Ubuntu qemu-system-arm, Fedora " \
           "qemu-system-arm)" in done.stdout
    apt = next(line for line in done.stdout.splitlines() if line.startswith("Debian/Ubuntu: "))
    assert apt.split()[1:3] == ["apt", "install"] and "qemu-system-arm" in apt.split()


@need("qemu-system-arm", "arm-linux-gnueabihf-gcc", "make", "gcc", "bison", "flex", "lz4", "xz",
      "pkg-config")
def test_plain_doctor_shows_the_build_tools_doctor_ci_checks(tmp_path):
    """The build_need checks (`bbv doctor --ci` per job) in plain doctor's host table: with
    pkg-config but no convert on PATH, the convert ones are missing, keytoc's are found (the
    real pkg-config asked for openssl), and neither changes the exit status."""
    path = _path_with(tmp_path, ["qemu-system-arm", "arm-linux-gnueabihf-gcc", "make", "gcc",
                                 "bison", "flex", "lz4", "xz", "pkg-config"])
    done = _doctor(["vexpress", "--json"], path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    host = {c["item"]: c for c in data["host"]}
    convert = host["ImageMagick's convert"]
    assert (convert["ok"], convert["needed_for"]) == (False, "build with CONFIG_BAREBOX_LOGO")
    assert convert["detail"].startswith("no convert on PATH; lib/logo/Makefile")
    assert "imagemagick" in data["install"]["debian"].split()
    ssl = subprocess.run(["pkg-config", "--exists", "openssl"]).returncode == 0
    assert host["OpenSSL's headers"]["ok"] is ssl
    table = _doctor(["vexpress"], path)
    assert table.returncode == 0
    line = next(x for x in table.stdout.splitlines() if "ImageMagick's convert" in x)
    assert "build with CONFIG_BAREBOX_LOGO" in line and "missing" in line
    assert "ImageMagick's convert: no convert on PATH; lib/logo/Makefile renders" in \
        " ".join(table.stdout.split())


@need("qemu-system-arm")
def test_doctor_without_names_exits_zero_even_when_something_is_missing(tmp_path):
    done = _doctor(["--json"], _path_with(tmp_path, ["qemu-system-arm"]))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data["targets"]) == set(catalog().names())
    assert not data["targets"]["malta"]["boot"]


def test_doctor_unknown_target_is_a_usage_error():
    done = _doctor(["vexpres"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bbv: error: unknown target 'vexpres' (did you mean 'vexpress'?); "
        "'bbv targets' lists them"]


@pytest.mark.pure
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_target_has_a_qemu_check(target):
    facts = TargetFacts()
    checks = target_checks(catalog().get(target), facts, pkgs())
    assert checks[0].item == catalog().get(target).qemu and not checks[0].ok
    assert checks[0].packages.get("debian") and checks[0].packages.get("fedora")


@need("openssl")
def test_doctor_probes_whether_openssl_pkey_pubin_reads_a_private_key(tmp_path):
    """bareboxtlv-generator --sign runs `openssl pkey -pubin -pubout -in KEY` on a private key:
    the probe's verdict is what that command does with a real private key here."""
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(key)], check=True,
                   capture_output=True)
    reads = subprocess.run(["openssl", "pkey", "-pubin", "-pubout", "-in", str(key)],
                           capture_output=True).returncode == 0
    done = _doctor(["vexpress", "--json"])
    check = next(c for c in json.loads(done.stdout)["suite"]
                 if c["item"].startswith("openssl pkey"))
    assert check["ok"] is reads
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    if version.startswith("OpenSSL 3.0."):  # Debian 12's
        assert not check["ok"]
        assert check["detail"].startswith(f"{' '.join(version.split()[:2])}: 'openssl pkey "
                                          "-pubin' does not read a private key: "
                                          "test/py/test_tlv.py error")


@need("pkg-config")
def test_pkg_config_finds_a_library_or_says_it_does_not(tmp_path, monkeypatch):
    """packages.toml's build_need `pkgconfig = NAME` (bbv test --ci): the real pkg-config,
    asked for a library of its own search path and for one nobody has."""
    from barebox_virtio_cli.doctor.host import pkg_config_finds

    (tmp_path / "bbvdemo.pc").write_text("Name: bbvdemo\nDescription: x\nVersion: 1\n")
    monkeypatch.setenv("PKG_CONFIG_PATH", str(tmp_path))
    assert pkg_config_finds("bbvdemo") is None
    assert pkg_config_finds("bbv-no-such-lib") == "pkg-config does not find bbv-no-such-lib"
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pkg_config_finds("bbvdemo") == "no pkg-config on PATH (Debian: pkg-config)"
