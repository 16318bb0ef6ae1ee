"""Pure logic of `bbv doctor`: from facts probed on the host (programs on PATH, QEMU versions,
firmware files, compilers) to check results, verdicts and install hints. Nothing is probed here;
doctor/host.py gathers the facts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from barebox_virtio_cli.targets.target import Target
from barebox_virtio_cli.testsuite.requirements import HostFacts, Requirement, problem

DISTROS = ("debian", "fedora")
INSTALL = {"debian": "apt install", "fedora": "dnf install"}


@dataclass(frozen=True)
class Packages:
    """configs/doctor/packages.toml (read by doctor/host.py): the host tools to check and who
    provides what."""

    build: list[str]
    optional: list[str]
    programs: dict[str, dict[str, str]]
    toolchains: dict[str, dict[str, str]]
    firmware: dict[str, dict[str, str]]
    # host tools a barebox build runs when its config has an option (bbv test --ci, per job)
    build_need: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class TargetFacts:
    """What the host offers one target; gathered by doctor/host.py."""

    qemu_path: str | None = None
    qemu_version: tuple[int, int, int] | None = None
    qemu_error: str = ""  # the probe failed: QEMU exists but does not answer
    machine_known: bool = True
    firmware_path: str | None = None  # the -bios file, or QEMU's default firmware file
    toolchain: str | None = None  # description of the compiler found
    toolchain_summary: str = ""  # e.g. "arm-linux-gnueabihf- 12.2.0"
    toolchain_error: str = ""


@dataclass(frozen=True)
class Check:
    scope: str  # "host" or a target name
    item: str
    ok: bool
    needed_for: str  # "build", "boot", "optional", "test/py" or "build with CONFIG_..."
    detail: str
    packages: dict[str, str] = field(default_factory=dict)  # distro -> package, when missing
    summary: str = ""  # a short form of detail for tables

    def to_json(self) -> dict:
        return asdict(self)


def host_checks(programs: dict[str, str | None], pkgs: Packages) -> list[Check]:
    checks = []
    for needed_for, names in (("build", pkgs.build), ("optional", pkgs.optional)):
        for name in names:
            path = programs.get(name)
            checks.append(Check("host", name, path is not None, needed_for,
                                path or "not on PATH",
                                {} if path else pkgs.programs.get(name, {})))
    return checks


def build_need_checks(needs: list[dict[str, str]], problems: dict[str, str | None]) -> list[Check]:
    """packages.toml's build_need as host checks: tools a build runs only when its config sets
    an option, so a missing one never fails a verdict (problems: need name -> what is wrong)."""
    checks = []
    for need in needs:
        problem = problems.get(need["name"])
        packages = {} if problem is None else {d: need[d] for d in DISTROS if need.get(d)}
        checks.append(Check("host", need["name"], problem is None, f"build with {need['config']}",
                            f"{problem}; {need['why']}" if problem else "found", packages,
                            summary="found" if problem is None else ""))
    return checks


def target_checks(target: Target, facts: TargetFacts, pkgs: Packages) -> list[Check]:
    return [_qemu_check(target, facts, pkgs), *_firmware_checks(target, facts, pkgs),
            _toolchain_check(target, facts, pkgs)]


def _qemu_check(target: Target, facts: TargetFacts, pkgs: Packages) -> Check:
    missing = pkgs.programs.get(target.qemu) or {"debian": target.qemu_package}
    if facts.qemu_path is None:
        return Check(target.name, target.qemu, False, "boot", "not on PATH", missing)
    if facts.qemu_error or facts.qemu_version is None:
        return Check(target.name, target.qemu, False, "boot",
                     f"{facts.qemu_path} does not answer: {facts.qemu_error}")
    version = ".".join(map(str, facts.qemu_version))
    if not facts.machine_known:
        return Check(target.name, target.qemu, False, "boot",
                     f"QEMU {version} has no machine '{target.machine}'")
    return Check(target.name, target.qemu, True, "boot", f"QEMU {version} ({facts.qemu_path})",
                 summary=version)


def _firmware_checks(target: Target, facts: TargetFacts, pkgs: Packages) -> list[Check]:
    if target.firmware:
        key, wanted = target.firmware_package, " or ".join(target.firmware)
    elif target.qemu_firmware and facts.qemu_path:
        key, wanted = target.qemu_firmware, f"{target.qemu_firmware} in QEMU's data dirs"
    else:
        return []
    if facts.firmware_path:
        return [Check(target.name, "firmware", True, "boot", facts.firmware_path,
                      summary=Path(facts.firmware_path).name)]
    packages = {d: p for d, p in pkgs.firmware.get(key, {"debian": key}).items() if p}
    hint = "" if packages else " (not packaged: pass --firmware FILE to bbv run)"
    return [Check(target.name, "firmware", False, "boot", f"missing: {wanted}{hint}", packages)]


def _toolchain_check(target: Target, facts: TargetFacts, pkgs: Packages) -> Check:
    if facts.toolchain:
        return Check(target.name, "cross compiler", True, "build", facts.toolchain,
                     summary=facts.toolchain_summary)
    key = target.gcc_machine[0] if target.gcc_machine else target.arch
    return Check(target.name, "cross compiler", False, "build",
                 facts.toolchain_error or "none found", pkgs.toolchains.get(key, {}))


@dataclass(frozen=True)
class Verdict:
    build: bool
    boot: bool


def verdict(host: list[Check], checks: list[Check]) -> Verdict:
    def fine(needed_for: str) -> bool:
        return all(c.ok for c in [*host, *checks] if c.needed_for == needed_for)

    return Verdict(build=fine("build"), boot=fine("boot"))


def install_hints(checks: list[Check]) -> dict[str, str]:
    """One install command per distribution for everything missing (optional tools included)."""
    hints = {}
    for distro in DISTROS:
        names = sorted({c.packages[distro] for c in checks
                        if not c.ok and c.packages.get(distro)})
        if names:
            hints[distro] = f"{INSTALL[distro]} {' '.join(names)}"
    return hints


def suite_checks(reqs: list[Requirement], facts: HostFacts) -> list[Check]:
    """barebox's test suite's host requirements (configs/suite/requirements.toml) as checks:
    needed for test/py, the tests that go without each named in its detail."""
    checks = []
    for req in reqs:
        missing = problem(req, facts)
        tests = ", ".join(req.tests)
        packages = {} if missing is None or req.pip else dict(req.packages)
        detail = f"found; used by {tests}" if missing is None else \
            f"{missing}: {tests} {'error' if req.outcome == 'error' else 'skipped'}" + \
            ("" if packages else f"; {req.how_to_install()}")
        checks.append(Check("suite", req.name, missing is None, "test/py", detail, packages,
                            summary="found" if missing is None else ""))
    return checks
