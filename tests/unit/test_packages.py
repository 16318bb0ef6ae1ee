"""tests/packages-debian.txt, the one list of Debian packages tests/run.sh installs, holds what
`bbv doctor --ci` and `bbv test --ci --list` name for barebox's CI envs (QEMU, firmware, the
cross compilers of the ARCHes bbv has no target for, the host tools a build runs) and what
barebox's test suite needs, so that a fresh machine runs every env it can."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from barebox_virtio_cli.ci.matrix import OTHER_TOOLCHAINS
from barebox_virtio_cli.doctor.host import packages, suite_requirements

pytestmark = pytest.mark.pure

LIST = ROOT / "tests" / "packages-debian.txt"


def listed() -> list[str]:
    """The list as tests/run.sh reads it: '#' comments dropped, words split on blanks."""
    return [w for line in LIST.read_text().splitlines()
            for w in line.split("#", 1)[0].split()]


def test_run_sh_reads_the_one_list():
    run = (ROOT / "tests" / "run.sh").read_text()
    assert "tests/packages-debian.txt" in run and "APT_PACKAGES=(" not in run
    names = listed()
    assert len(names) == len(set(names)), "a package listed twice"
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", n) for n in names)


def test_the_list_holds_what_doctor_names_for_the_ci_envs():
    pkgs = packages()
    wanted = {v["debian"] for k, v in pkgs.programs.items() if k.startswith("qemu-system-")}
    wanted |= {v["debian"] for v in pkgs.firmware.values()}
    wanted |= {pkgs.toolchains[arch]["debian"] for arch in OTHER_TOOLCHAINS
               if arch in pkgs.toolchains}
    wanted |= {need["debian"] for need in pkgs.build_need}
    wanted |= {r.packages.get("debian", "") for r in suite_requirements()
               if r.kind != "python"}  # pip brings the Python modules
    wanted.discard("")  # what Debian does not package (a 32-bit OpenSBI)
    assert {"gcc-powerpc-linux-gnu", "gcc-or1k-elf", "qemu-system-ppc", "ovmf",
            "imagemagick"} <= wanted  # the ones bbv's own targets do not bring
    assert sorted(wanted - set(listed())) == []
