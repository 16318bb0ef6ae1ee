"""`bbv test --full`: what barebox's suite skips for, given back (configs/suite/full.toml).
For a tree, the config fragment to merge into any build, each option checked against the
tree's Kconfig; for a target, the labgrid features and QEMU devices it can carry. Pure: the
tree's symbols and files come in as arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from barebox_virtio_cli.errors import BbvError

DEVICES = ("framebuffer",)
_OPTION = re.compile(r"^CONFIG_(\w+)=")
_SKIP_CALL = re.compile(r"skip_disabled\(\s*barebox_config\s*,([^)]*)\)")
_CONFIG_LIST = re.compile(r"^\w*CONFIGS?\w*\s*=\s*\[([^\]]*)\]", re.MULTILINE)
_SYMBOL = re.compile(r"[\"'](CONFIG_\w+)[\"']")


@dataclass(frozen=True)
class Group:
    name: str
    tests: tuple[str, ...]
    kconfig: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # barebox environment entries (fw_cfg), PATH=VALUE


@dataclass(frozen=True)
class Broken:
    """An option the tree defines that does not build for one ARCH (barebox's bug)."""

    option: str  # CONFIG_X
    arch: str
    why: str


@dataclass(frozen=True)
class FullSet:
    groups: list[Group]
    left_out: dict[str, str] = field(default_factory=dict)  # test file -> why
    broken: list[Broken] = field(default_factory=list)


def parse_full(data: dict, source: str) -> FullSet:
    groups = []
    for index, entry in enumerate(data.get("group", [])):
        where = f"{source}: group {index + 1} ({entry.get('name', '?')})"
        if "name" not in entry or not entry.get("tests"):
            raise BbvError(f"{where}: needs a name and tests")
        bad = [o for o in entry.get("kconfig", []) if not _OPTION.match(o)]
        if bad:
            raise BbvError(f"{where}: kconfig entries are CONFIG_X=VALUE, not {bad[0]!r}")
        bad = [e for e in entry.get("env", []) if "=" not in e]
        if bad:
            raise BbvError(f"{where}: env entries are PATH=VALUE, not {bad[0]!r}")
        unknown = [d for d in entry.get("devices", []) if d not in DEVICES]
        if unknown:
            raise BbvError(f"{where}: unknown device {unknown[0]!r} (known: "
                           f"{', '.join(DEVICES)})")
        groups.append(Group(str(entry["name"]), *(tuple(str(v) for v in entry.get(key, []))
                                                  for key in ("tests", "kconfig", "fragments",
                                                              "features", "devices", "env"))))
    broken = []
    for index, entry in enumerate(data.get("broken", [])):
        if not {"option", "arch", "why"} <= entry.keys():
            raise BbvError(f"{source}: broken {index + 1}: needs option, arch and why")
        broken.append(Broken(str(entry["option"]), str(entry["arch"]), str(entry["why"])))
    return FullSet(groups, {str(k): str(v) for k, v in data.get("left_out", {}).items()},
                   broken)


def for_arch(full: FullSet, kconfig: list[str], arch: str) -> tuple[list[str], list[str]]:
    """kconfig without the options that do not build for ARCH, and a note for each dropped."""
    broken = {b.option: b.why for b in full.broken if b.arch == arch}
    kept = [k for k in kconfig if k.partition("=")[0] not in broken]
    notes = [f"{k.partition('=')[0]} dropped for ARCH={arch}: {broken[k.partition('=')[0]]}"
             for k in kconfig if k.partition("=")[0] in broken]
    return kept, notes


@dataclass(frozen=True)
class FullBuild:
    """What --full merges into a tree's builds: the tree's fragments, then single options."""

    kconfig: list[str]
    notes: list[str]


def full_build(full: FullSet, known: set[str], has_file: Callable[[str], bool]) -> FullBuild:
    """The fragment for a tree whose Kconfig defines the symbols `known` (without CONFIG_) and
    which has the files has_file says it has; what is dropped is said in the notes."""
    fragments, options, notes = [], [], []
    for group in full.groups:
        for path in group.fragments:
            if has_file(path):
                fragments.append(path)
            else:
                notes.append(f"{path} is not in this tree: not merged ({group.name})")
        for option in group.kconfig:
            if _OPTION.match(option).group(1) in known:
                options.append(option)
            else:
                notes.append(f"{option.partition('=')[0]} is not in this tree's Kconfig: "
                             f"dropped ({group.name})")
    return FullBuild(list(dict.fromkeys([*fragments, *options])), list(dict.fromkeys(notes)))


@dataclass(frozen=True)
class FullEnv:
    """What --full adds to one target's labgrid environment."""

    features: list[str]
    devices: list[str]
    env: list[str]  # PATH=VALUE entries of barebox's environment
    notes: list[str]


def full_env(full: FullSet, extras: list[str], target: str) -> FullEnv:
    """The features, devices and environment of the groups the target can carry (its
    `full_extras`)."""
    features, devices, env, notes = [], [], [], []
    for group in full.groups:
        wanted = [*group.features, *group.devices]
        lacking = [w for w in wanted if w not in extras]
        if lacking:
            notes.append(f"{target}: no {', '.join(lacking)} for {', '.join(group.tests)} "
                         "(not checked on this target)")
            continue
        features += group.features
        devices += group.devices
        env += group.env
    return FullEnv(*(list(dict.fromkeys(x)) for x in (features, devices, env)), notes)


def suite_symbols(text: str) -> set[str]:
    """The CONFIG_ symbols a test file's skip conditions name: skip_disabled(barebox_config,
    ...) calls and module-level lists of them (test_nvmem.py's ESSENTIAL_CONFIGS)."""
    found = set()
    for args in [*_SKIP_CALL.findall(text), *_CONFIG_LIST.findall(text)]:
        found.update(_SYMBOL.findall(args))
    return found


def asked_for(full: FullSet, fragment_text: Callable[[str], str]) -> set[str]:
    """Every CONFIG_ symbol --full sets to something other than n: its options and those of
    the tree's fragments it merges (fragment_text gives a fragment's text, "" if absent)."""
    symbols = set()
    for group in full.groups:
        lines = [*group.kconfig, *(line for path in group.fragments
                                   for line in fragment_text(path).splitlines())]
        symbols.update(line.partition("=")[0] for line in lines
                       if _OPTION.match(line) and not line.endswith("=n"))
    return symbols
