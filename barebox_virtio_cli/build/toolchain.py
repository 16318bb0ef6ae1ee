"""Which cross compiler builds a target: candidates in MAKEALL's order, each checked with
`<prefix>gcc -dumpmachine` (results cached by path and mtime).

Order: --cross-compile > $CROSS_COMPILE_<defconfig> > $CROSS_COMPILE_<arch> > $CROSS_COMPILE >
config file ([cross_compile] <defconfig>, then <arch>) > toolchains from `bbv toolchain fetch` >
the target's known prefixes on PATH and in the usual install places. A candidate the user named
(the first four sources) must fit the target or the build stops; found ones are skipped if not."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util import userconfig
from barebox_virtio_cli.util.hosttools import on_path
from barebox_virtio_cli.util.jsonfile import read_object, stamp, write_cache
from barebox_virtio_cli.util.paths import cache_dir, data_dir

# Beyond PATH: where cross toolchains usually get unpacked (kernel.org crosstool lands in
# /opt/gcc-<ver>-nolibc/<triplet>/bin, crosstool-ng in ~/x-tools/<triplet>/bin).
EXTRA_DIRS = ("/opt/*/bin", "/opt/*/*/bin", "/usr/local/*/bin", "~/.local/bin",
              "~/.local/*/bin", "~/.local/*/*/bin", "~/x-tools/*/bin")


@dataclass(frozen=True)
class Candidate:
    prefix: str
    source: str  # where it came from, for the user
    explicit: bool = False  # named by the user: refuse rather than skip when it does not fit


@dataclass(frozen=True)
class GccInfo:
    gcc: str  # absolute path of <prefix>gcc
    machine: str  # `gcc -dumpmachine`
    version: str


@dataclass(frozen=True)
class Toolchain:
    prefix: str
    source: str
    info: GccInfo

    def describe(self) -> str:
        shown = self.prefix or "(host gcc)"
        return f"{shown} (GCC {self.info.version}, {self.info.machine}) from {self.source}"


def env_arch(target: Target) -> str:
    return target.cross_compile_arch or target.arch


def explicit_candidates(target: Target, defconfig: str, cli: str | None,
                        env: Mapping[str, str], config: Mapping[str, str]) -> list[Candidate]:
    """What the user named, in MAKEALL's order; empty variables count as unset."""
    out = [Candidate(cli, "--cross-compile", True)] if cli else []
    for name in (f"CROSS_COMPILE_{defconfig.replace('-', '_')}",
                 f"CROSS_COMPILE_{env_arch(target)}", "CROSS_COMPILE"):
        if env.get(name):
            out.append(Candidate(env[name], f"${name}", True))
    for key in (defconfig, env_arch(target)):
        if config.get(key):
            out.append(Candidate(config[key], f"config file [cross_compile] {key}", True))
    return out


def machine_matches(machine: str, patterns: Iterable[str]) -> bool:
    cpu = machine.split("-", 1)[0]
    return any(fnmatchcase(cpu, p) for p in patterns)


def search_dirs(path_env: str) -> list[Path]:
    dirs = [Path(p) for p in path_env.split(os.pathsep) if p]
    for pattern in EXTRA_DIRS:
        dirs += [Path(p) for p in sorted(glob.glob(os.path.expanduser(pattern)))]
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def fetched_candidates(root: Path) -> list[Candidate]:
    """Compilers unpacked by `bbv toolchain fetch`, newest version first."""
    gccs = sorted(root.glob("*/bin/*-gcc"), reverse=True)
    return [Candidate(str(g)[:-3], f"bbv toolchain fetch ({g.parent.parent.name})")
            for g in gccs]


def path_candidates(prefixes: Iterable[str], dirs: list[Path], path_env: str) -> list[Candidate]:
    on_path = {Path(p) for p in path_env.split(os.pathsep) if p}
    out = []
    seen: set[str] = set()  # real paths: /bin is often /usr/bin, gcc often x86_64-linux-gnu-gcc
    for prefix in prefixes:
        for directory in dirs:
            gcc = directory / f"{prefix}gcc"
            if os.access(gcc, os.X_OK) and gcc.is_file() and _first(os.path.realpath(gcc), seen):
                # A bare prefix only when PATH lookup would give this same compiler.
                plain = directory in on_path and _which(f"{prefix}gcc", path_env) == gcc
                out.append(Candidate(prefix if plain else f"{directory}/{prefix}",
                                     f"PATH ({directory})" if directory in on_path
                                     else f"search ({directory})"))
    return out


def _first(key: str, seen: set[str]) -> bool:
    new = key not in seen
    seen.add(key)
    return new


def _which(name: str, path_env: str) -> Path | None:
    found = on_path(name, path_env)
    return Path(found) if found else None


def gcc_path(prefix: str, path_env: str) -> Path | None:
    """<prefix>gcc as a file; the last word only, so that "ccache arm-linux-" works."""
    words = prefix.split()
    name = (words[-1] if words else "") + "gcc"
    if "/" in name:
        path = Path(os.path.expanduser(name))
        return path if os.access(path, os.X_OK) and path.is_file() else None
    return _which(name, path_env)


class ProbeCache:
    """`gcc -dumpmachine` and version per compiler, keyed on its real path, mtime and size."""

    def __init__(self, path: Path):
        self.path = path
        self.dirty = False
        self.data = read_object(path) or {}

    def probe(self, gcc: Path) -> GccInfo | None:
        real = os.path.realpath(gcc)
        try:
            key = stamp(real)
        except OSError:
            return None
        hit = self.data.get(real)
        if isinstance(hit, dict) and hit.get("key") == key:
            return GccInfo(str(gcc), hit["machine"], hit["version"])
        info = run_probe(gcc)
        if info is not None:
            self.data[real] = {"key": key, "machine": info.machine, "version": info.version}
            self.dirty = True
        return info

    def save(self) -> None:
        if self.dirty:
            write_cache(self.path, self.data)
            self.dirty = False


def run_probe(gcc: Path) -> GccInfo | None:
    try:
        machine = _output([str(gcc), "-dumpmachine"])
        version = _output([str(gcc), "-dumpfullversion", "-dumpversion"])
    except (OSError, subprocess.SubprocessError):
        return None
    if not machine:
        return None
    return GccInfo(str(gcc), machine, version or "?")


def _output(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True)
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def needs(target: Target) -> str:
    return f"a compiler for {target.gcc_machine[0]} ({target.bits}-bit, ARCH={target.arch})"


def wrong_arch(cand: Candidate, info: GccInfo, target: Target) -> str:
    hint = target.toolchain_prefixes[0] if target.toolchain_prefixes else ""
    example = f", e.g. {hint}" if hint else ""
    return (f"{cand.source}={cand.prefix!r} is a compiler for {info.machine}, but target "
            f"'{target.name}' needs {needs(target)}{example}; it was not passed to make")


def resolve(target: Target, explicit: list[Candidate], auto: list[Candidate],
            probe: Callable[[str], GccInfo | None]) -> Toolchain:
    """The first candidate that fits; a user-named one that does not fit is an error."""
    for cand in explicit:
        info = probe(cand.prefix)
        if info is None:
            raise BbvError(f"{cand.source}={cand.prefix!r}: {cand.prefix.split()[-1]}gcc not "
                           "found or does not run; fix the setting or unset it")
        if not machine_matches(info.machine, target.gcc_machine):
            raise BbvError(wrong_arch(cand, info, target))
        return Toolchain(cand.prefix, cand.source, info)
    wrong = []
    for cand in auto:
        info = probe(cand.prefix)
        if info is None:
            continue
        if machine_matches(info.machine, target.gcc_machine):
            return Toolchain(cand.prefix, cand.source, info)
        wrong.append(f"{cand.prefix}gcc is {info.machine}")
    raise BbvError(no_toolchain(target, wrong))


def no_toolchain(target: Target, wrong: list[str]) -> str:
    tried = ", ".join(p or "gcc" for p in target.toolchain_prefixes[:4])
    more = "" if len(target.toolchain_prefixes) <= 4 else ", ..."
    skipped = f"; skipped {'; '.join(wrong)}" if wrong else ""
    pkg = f"install Debian package {target.toolchain_package}, " if target.toolchain_package else ""
    fetch = f"run 'bbv toolchain fetch {target.name}', " if target.crosstool_triplet else ""
    return (f"no {needs(target).removeprefix('a ')} found for target '{target.name}' "
            "(tried $CROSS_COMPILE*, "
            f"downloaded toolchains, {tried}{more} on PATH and /opt/*/bin{skipped}); "
            f"{pkg}{fetch}or set CROSS_COMPILE")


@dataclass
class Finder:
    """Gathers candidates from the environment, config file and disk, and probes them."""

    env: Mapping[str, str]
    cache: ProbeCache
    config: Mapping[str, str]
    fetched_root: Path

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> Finder:
        return cls(env=os.environ if env is None else env,
                   cache=ProbeCache(cache_dir() / "gcc-probes.json"),
                   config=userconfig.table(userconfig.load(), "cross_compile"),
                   fetched_root=data_dir() / "toolchains")

    @property
    def path_env(self) -> str:
        return self.env.get("PATH", os.defpath)

    def probe(self, prefix: str) -> GccInfo | None:
        gcc = gcc_path(prefix, self.path_env)
        return None if gcc is None else self.cache.probe(gcc)

    def explicit(self, target: Target, defconfig: str, cli: str | None) -> list[Candidate]:
        return explicit_candidates(target, defconfig, cli, self.env, self.config)

    def auto(self, target: Target) -> list[Candidate]:
        fetched = [c for c in fetched_candidates(self.fetched_root)
                   if machine_matches(Path(c.prefix).name, target.gcc_machine)]
        return fetched + path_candidates(target.toolchain_prefixes,
                                         search_dirs(self.path_env), self.path_env)

    def find(self, target: Target, defconfig: str, cli: str | None = None) -> Toolchain:
        try:
            return resolve(target, self.explicit(target, defconfig, cli), self.auto(target),
                           self.probe)
        finally:
            self.cache.save()

    def survey(self, target: Target, defconfig: str) -> list[tuple[Candidate, GccInfo | None]]:
        """Every candidate with its probe result (None: not found or does not run)."""
        seen: set[str] = set()
        out = []
        for cand in self.explicit(target, defconfig, None) + self.auto(target):
            if cand.prefix not in seen:
                seen.add(cand.prefix)
                out.append((cand, self.probe(cand.prefix)))
        self.cache.save()
        return out


def survey_targets(names: list[str]) -> list[dict]:
    """`bbv toolchain list`: per target, every compiler found, whether it fits, which one
    `bbv build` would use (or why none)."""
    catalog = load_catalog()
    finder = Finder.default()
    report = []
    for target in [catalog.get(n) for n in names] or [catalog.targets[n] for n in catalog.names()]:
        defconfig = target.defconfigs[-1]
        try:
            use = resolve(target, finder.explicit(target, defconfig, None), finder.auto(target),
                          finder.probe).prefix
            problem = None
        except BbvError as exc:
            use, problem = None, str(exc)
        found = [{"prefix": c.prefix, "source": c.source,
                  "machine": info.machine if info else None,
                  "version": info.version if info else None,
                  "fits": bool(info and machine_matches(info.machine, target.gcc_machine)),
                  "used": c.prefix == use}
                 for c, info in finder.survey(target, defconfig)]
        report.append({"target": target.name, "arch": target.arch, "bits": target.bits,
                       "use": use, "problem": problem, "found": found})
    return report
