"""The facts `bbv doctor` gathers on this host: programs on PATH, QEMU (from the cached QMP
probe), firmware files and cross compilers (the search `bbv build` does). The checks made of
them are pure, in doctor/checks.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build.toolchain import Finder
from barebox_virtio_cli.doctor.checks import (
    Check,
    Packages,
    TargetFacts,
    Verdict,
    build_need_checks,
    host_checks,
    install_hints,
    suite_checks,
    target_checks,
    verdict,
)
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.qemu.probe import probe
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.testsuite.requirements import HostFacts, Requirement, parse_requirements
from barebox_virtio_cli.util.hosttools import on_path, which
from barebox_virtio_cli.util.paths import builtin_configs_dir
from barebox_virtio_cli.util.tomlfile import read_toml

LISTS = ("build", "optional", "build_need")  # the keys of packages.toml that are lists


def load_packages(path: Path) -> Packages:
    data = read_toml(path, "package list")
    try:
        return Packages(**{key: data.get(key, [] if key in LISTS else {})
                           for key in Packages.__dataclass_fields__})
    except TypeError as exc:
        raise BbvError(f"{path}: unexpected layout: {exc}") from exc


def packages() -> Packages:
    return load_packages(builtin_configs_dir() / "doctor" / "packages.toml")


def suite_requirements() -> list[Requirement]:
    """configs/suite/requirements.toml: what barebox's test suite needs on the host."""
    path = builtin_configs_dir() / "suite" / "requirements.toml"
    return parse_requirements(read_toml(path, "test suite requirements"), str(path))


def _openssl_pubin_private_key() -> str | None:
    """Whether `openssl pkey -pubin` reads a private key file, as bareboxtlv-generator --sign
    has it do (OpenSSL 3.0 does not). None: it does, or there is no openssl to ask."""
    if which("openssl") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bbv-openssl-") as tmp:
        key = os.path.join(tmp, "key.pem")
        try:
            subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-out", key], check=True,
                           capture_output=True, timeout=30)
            got = subprocess.run(["openssl", "pkey", "-pubin", "-pubout", "-in", key],
                                 capture_output=True, text=True, timeout=30)
            version = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                                     timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            return f"openssl did not answer: {exc}"
    if got.returncode == 0 and "PUBLIC KEY" in got.stdout:
        return None
    name = " ".join(version.split()[:2]) or "openssl"
    return f"{name}: 'openssl pkey -pubin' does not read a private key"


def _answer(argv: list[str]) -> subprocess.CompletedProcess | str:
    """argv run (its output), or why it could not be."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{argv[0]} did not answer: {exc}"


def _imagemagick_convert() -> str | None:
    """Whether `convert` is ImageMagick's (a stand-in or GraphicsMagick's does not render
    barebox's SVG logo with its options)."""
    path = which("convert")
    if path is None:
        return "no convert on PATH"
    got = _answer([path, "-version"])
    if isinstance(got, str):
        return got
    if got.returncode == 0 and "ImageMagick" in got.stdout:
        return None
    return f"{path} is not ImageMagick's convert ('convert -version' does not say ImageMagick)"


_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
        '<rect width="4" height="4"/></svg>')


def _convert_svg() -> str | None:
    """Whether convert renders an SVG to PNG, as lib/logo's rule does: Debian's ImageMagick
    hands SVG to rsvg-convert (or inkscape) and fails without one."""
    path = which("convert")
    if path is None:
        return "no convert on PATH"
    with tempfile.TemporaryDirectory(prefix="bbv-convert-") as tmp:
        svg, png = os.path.join(tmp, "a.svg"), os.path.join(tmp, "a.png")
        Path(svg).write_text(_SVG)
        got = _answer([path, "-background", "none", svg, f"png:{png}"])
        if isinstance(got, str):
            return got
        if got.returncode == 0 and os.path.isfile(png):
            return None
    return "convert cannot render an SVG (ImageMagick passes SVG to rsvg-convert)"


def pkg_config_finds(library: str) -> str | None:
    """Whether pkg-config finds a library (its -dev package): None, or what is wrong."""
    if which("pkg-config") is None:
        return "no pkg-config on PATH (Debian: pkg-config)"
    got = _answer(["pkg-config", "--exists", library])
    if isinstance(got, str):
        return got
    return None if got.returncode == 0 else f"pkg-config does not find {library}"


# The behaviour probes configs/suite/requirements.toml and packages.toml's build_need name
# (probe = "NAME"): each returns None when the host does it, else what is wrong.
PROBES = {"openssl-pubin-private-key": _openssl_pubin_private_key,
          "imagemagick-convert": _imagemagick_convert,
          "convert-svg": _convert_svg}


def need_problem(need: dict[str, str]) -> str | None:
    """What is wrong with one of packages.toml's build_need on this host (None: nothing): its
    behaviour probe, its pkg-config library or its program on PATH."""
    if "probe" in need:
        probe_fn = PROBES.get(need["probe"])
        return probe_fn() if probe_fn else f"bbv has no probe '{need['probe']}'"
    if "pkgconfig" in need:
        return pkg_config_finds(need["pkgconfig"])
    return None if on_path(need["program"]) else f"no {need['program']} on PATH"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def suite_facts(reqs: list[Requirement]) -> HostFacts:
    """Probe what the requirements ask about, each thing once."""
    def wanted(kind: str) -> set[str]:
        return {r.what for r in reqs if r.kind == kind}

    probes = {}
    for name in wanted("probe"):
        probe_fn = PROBES.get(name)
        probes[name] = probe_fn() if probe_fn else f"bbv has no probe '{name}'"
    return HostFacts(modules=frozenset(m for m in wanted("python") if _importable(m)),
                     programs=frozenset(p for p in wanted("program") if which(p)),
                     probes=probes)


def probe_qemu(target: Target) -> dict:
    """QEMU path, version and machine/firmware facts, from the cached QMP probe."""
    path = on_path(target.qemu)
    if path is None:
        return {}
    try:
        info = probe(path)
    except BbvError as exc:
        return {"qemu_path": path, "qemu_error": str(exc)}
    firmware = next((f for f in target.firmware if os.path.isfile(f)), None)
    if not target.firmware and target.qemu_firmware:
        firmware = info.data_file(target.qemu_firmware)
    return {"qemu_path": path, "qemu_version": info.version, "firmware_path": firmware,
            "machine_known": target.machine.split(",", 1)[0] in info.machines}


class ToolchainFinder:
    """Adapter to barebox_virtio_cli.build.toolchain, the same search `bbv build` does."""

    def __init__(self) -> None:
        self.finder = Finder.default()

    def __call__(self, target: Target) -> dict:
        try:
            found = self.finder.find(target, target.defconfigs[-1])
        except BbvError as exc:
            return {"toolchain_error": str(exc)}
        return {"toolchain": found.describe(),
                "toolchain_summary": f"{found.prefix or 'gcc'} {found.info.version}"}


def gather(targets: list[Target], pkgs: Packages) -> tuple[list[Check], dict[str, list[Check]]]:
    programs = {name: which(name) for name in [*pkgs.build, *pkgs.optional]}
    find_toolchain = ToolchainFinder()
    per_target = {t.name: target_checks(t, TargetFacts(**probe_qemu(t), **find_toolchain(t)),
                                        pkgs)
                  for t in targets}
    problems = {need["name"]: need_problem(need) for need in pkgs.build_need}
    return [*host_checks(programs, pkgs), *build_need_checks(pkgs.build_need, problems)], \
        per_target


@dataclass
class Diagnosis:
    host: list[Check]
    per_target: dict[str, list[Check]]
    verdicts: dict[str, Verdict]
    hints: dict[str, str]  # distro -> one install command for everything missing
    suite: list[Check]  # barebox's test suite's host requirements (bbv test)

    def failed(self, names: list[str]) -> list[str]:
        """The named targets this host cannot build or boot."""
        return [n for n in names if not (self.verdicts[n].build and self.verdicts[n].boot)]


def diagnose(names: list[str]) -> Diagnosis:
    """doctor's checks for the named targets (every target without names)."""
    catalog = load_catalog()
    targets = [catalog.get(n) for n in dict.fromkeys(names)] or \
        [catalog.targets[n] for n in catalog.names()]
    host, per_target = gather(targets, packages())
    reqs = suite_requirements()
    suite = suite_checks(reqs, suite_facts(reqs))
    verdicts = {name: verdict(host, checks) for name, checks in per_target.items()}
    hints = install_hints([*host, *(c for cs in per_target.values() for c in cs), *suite])
    return Diagnosis(host, per_target, verdicts, hints, suite)
