"""A barebox source tree as `bbv build` sees it: detection, defconfigs, what to build, the make
command lines, and reading make's output. No processes here (see make_runner.py)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.target import Catalog, Target

# Kbuild's quiet output: "  CC      common/foo.o", "  LD      barebox", "  IMAGE   images/x.img".
_STEP = re.compile(r"^  ([A-Z][A-Z0-9_-]{1,15})\s+(\S.*)$")
_ERROR = re.compile(r"(: (fatal )?error: |: Error: |: undefined reference|\*\*\* "
                    r"|^make(\[\d+\])?: \*\*\*|^Error: |No rule to make target)")
# Kbuild's intermediates, and the empty placeholders barebox leaves for images whose firmware
# is missing.
_NOT_IMAGE = re.compile(r"(\.o|\.map|\.lds|\.pblb?|\.sum|\.z|\.sha\.bin|\.cmd|\.tmp"
                        r"|\.missing-firmware)$")
_VIRTUAL = re.compile(r"^([\w.+-]+_defconfig):", re.M)
_PATTERN = re.compile(r"^%(_[\w-]+_defconfig):", re.M)
# Kconfig's own make targets (scripts/kconfig/Makefile's simple-targets), e.g. allyesconfig
_SIMPLE = re.compile(r"^simple-targets\s*:=((?:.*\\\n)*.*)$", re.M)
_64BIT = re.compile(r"^CONFIG_(ARM64|64BIT|ARCH_RV64I)=y", re.M)
_DEFCONFIG_SUFFIX = re.compile(r"_(def)?conf\w*$")
_BITS_IN_DEFCONFIG = ("arm", "mips", "riscv")
_CONFIG_HEADER = re.compile(r"^# Barebox/([\w-]+) .*Configuration$", re.M)
_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$", re.M)
_NO_KCONFIG = {"scripts", "Documentation", "images", "test"}
CONFIG_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
NOT_SET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
MARKERS_OF_BUILD_DIR = (".config", "Makefile", "include/generated")


def is_barebox_tree(src: Path) -> bool:
    try:
        makefile = (src / "Makefile").read_bytes()
    except OSError:
        return False
    return (b"barebox" in makefile and (src / "Kconfig").is_file() and (src / "arch").is_dir()
            and (src / "scripts" / "kconfig").is_dir())


def check_tree(src: Path, given: bool = False) -> None:
    """given: the user named src with --src (else it is the current directory)."""
    if not src.is_dir():
        raise UsageError(f"--src {src}: no such directory")
    if not is_barebox_tree(src):
        what = f"--src {src} is" if given else f"{src} is"
        fix = "give the top directory of a barebox source tree" if given else \
            "cd into one or pass --src DIR"
        raise UsageError(f"{what} not a barebox source tree (no barebox Makefile, Kconfig, "
                         f"arch/ and scripts/kconfig/); {fix}")


def defconfigs(src: Path) -> dict[str, str]:
    """Every defconfig in the tree -> its ARCH: the files, and the generated ones that
    arch/*/Makefile defines as make targets (qemu-maltael_defconfig = qemu-malta + le.config)."""
    known = {p.name: p.parent.parent.name for p in sorted(src.glob("arch/*/configs/*_defconfig"))}
    for makefile in sorted(src.glob("arch/*/Makefile")):
        for name in _VIRTUAL.findall(_read(makefile)):
            known.setdefault(name, makefile.parent.name)
    # Pattern rules in the top Makefile, e.g. %_efi_defconfig: multi_v8_efi_defconfig.
    for suffix in _PATTERN.findall(_read(src / "Makefile")):
        for name, arch in list(known.items()):
            if name.endswith("_defconfig") and not name.endswith(suffix):
                known.setdefault(name[: -len("_defconfig")] + suffix, arch)
    return known


def whole_configs(src: Path) -> list[str]:
    """The configs Kconfig makes for the whole tree without a defconfig file (allyesconfig,
    allnoconfig, ...: the all* of scripts/kconfig/Makefile's simple-targets), as barebox's CI
    builds sandbox's allyesconfig."""
    match = _SIMPLE.search(_read(src / "scripts" / "kconfig" / "Makefile"))
    words = match.group(1).replace("\\", " ").split() if match else []
    return [w for w in words if w.startswith("all") and w.endswith("config")]


def defconfig_bits(src: Path, arch: str, defconfig: str) -> int | None:
    """64 or 32 from the defconfig file (MAKEALL checks CONFIG_ARM64); None if generated, or
    where defconfigs do not say (x86's 64BIT follows from X86_EFI, which none names)."""
    path = src / "arch" / arch / "configs" / defconfig
    if arch not in _BITS_IN_DEFCONFIG or not path.is_file():
        return None
    return 64 if _64BIT.search(_read(path)) else 32


def check_fits(target: Target, arch: str, defconfig: str, bits: int | None,
               catalog: Catalog) -> None:
    """A defconfig given for a target must build for the target's ARCH and bitness: another
    one writes a .config the target's compiler cannot build (and bbv would record it)."""
    if arch == target.arch and (bits is None or bits == target.bits):
        return
    what = f"an ARCH={arch} defconfig" if arch != target.arch else f"{bits}-bit"
    fits = [t.name for t in catalog.targets.values() if defconfig in t.defconfigs
            and t.arch == arch]
    instead = f", or build target {' or '.join(fits)}" if fits else ""
    raise UsageError(f"--defconfig {defconfig} is {what}, and target '{target.name}' is "
                     f"ARCH={target.arch} ({target.bits}-bit); give a defconfig of "
                     f"arch/{target.arch}/configs{instead}")


def config_arch(text: str, arches) -> str | None:
    """The ARCH a .config was made for: its header ('# Barebox/arm 2026.06.0 Configuration'),
    else the arch's own symbol (CONFIG_ARM=y) of one of arches."""
    if match := _CONFIG_HEADER.search(text):
        return match.group(1)
    found = [a for a in arches if f"\nCONFIG_{a.upper()}=y\n" in f"\n{text}\n"]
    return found[0] if len(found) == 1 else None


def foreign_symbols(src: Path, arch: str, settings: dict[str, str]) -> dict[str, str]:
    """The symbols set (to anything but n) that only another ARCH's Kconfig defines:
    symbol -> that ARCH. A fragment setting them was written for another target."""
    wanted = {k[len("CONFIG_"):] for k, v in settings.items() if v != "n"}
    if not wanted:
        return {}
    where: dict[str, set[str]] = {}
    for path in _kconfig_files(src):
        rel = path.relative_to(src).parts
        owner = rel[1] if rel[0] == "arch" and len(rel) > 2 else ""
        for name in _KCONFIG_SYMBOL.findall(_read(path)):
            if name in wanted:
                where.setdefault(name, set()).add(owner)
    return {f"CONFIG_{name}": sorted(owners)[0] for name, owners in where.items()
            if "" not in owners and arch not in owners}


def defined_symbols(src: Path) -> set[str]:
    """Every symbol the tree's Kconfig files define (without CONFIG_), test/Kconfig's too
    (CMD_SELFTEST is there); scripts/kconfig's own test files are not the tree's."""
    return {name for path in _kconfig_files(src, _NO_KCONFIG - {"test"})
            for name in _KCONFIG_SYMBOL.findall(_read(path))}


def _kconfig_files(src: Path, skip: set[str] = _NO_KCONFIG):
    """Kconfig files of the tree, without walking into build directories or tools."""
    import os

    for top, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build")) and d not in skip
                   and not os.path.exists(os.path.join(top, d, ".config"))]
        for name in files:
            if name.startswith("Kconfig"):
                yield Path(top) / name


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Plan:
    """What to build: ARCH and defconfig, and the catalog target when there is one."""

    arch: str
    defconfig: str
    target: Target | None
    why: str  # how the defconfig was chosen

    @property
    def name(self) -> str:
        return self.target.name if self.target else self.defconfig


def plan(src: Path, catalog: Catalog, name: str | None, arch: str | None,
         defconfig: str | None) -> Plan:
    """TARGET may be a catalog target or a defconfig; --arch/--defconfig refine or replace it."""
    known = defconfigs(src)
    if name in catalog.targets:
        target = catalog.targets[name]
        if arch and arch != target.arch and arch not in target.arch_names:
            raise UsageError(f"target '{name}' is ARCH={target.arch}, not '{arch}'")
    elif name:
        defconfig = _defconfig_name(name, known, defconfig, catalog.names())
        target = None
    elif arch and defconfig:
        target = None
    elif arch:
        target = catalog.for_arch(arch)
    else:
        raise UsageError("say what to build: a target (see 'bbv targets'), a defconfig, "
                         "or --arch with --defconfig")
    if target is not None and defconfig is None:
        return _from_target(target, known)
    assert defconfig is not None
    if arch and defconfig in whole_configs(src) and (src / "arch" / arch).is_dir():
        return Plan(arch, defconfig, _target_for(catalog, arch, defconfig, arch),
                    f"Kconfig's {defconfig} for ARCH={arch}")
    given = defconfig
    if not defconfig.endswith("_defconfig"):
        defconfig += "_defconfig"
    if defconfig not in known:
        raise UsageError(f"no defconfig '{given}' in {src}/arch/*/configs{_close(given, known)}")
    found_arch = known[defconfig]
    if target is None:
        target = _target_for(catalog, found_arch, defconfig, arch)
    else:
        check_fits(target, found_arch, defconfig, defconfig_bits(src, found_arch, defconfig),
                   catalog)
    return Plan(found_arch, defconfig, target, "given")


def _defconfig_name(name: str, known: dict[str, str], defconfig: str | None,
                    targets: list[str]) -> str:
    if defconfig:
        raise UsageError(f"give either a defconfig ('{name}') or --defconfig, not both")
    if name in known or f"{name}_defconfig" in known or name.endswith("_defconfig"):
        return name
    raise UsageError(f"'{name}' is neither a bbv target (see 'bbv targets') nor a defconfig "
                     f"of this tree{_close(name, [*targets, *known])}")


def _from_target(target: Target, known: dict[str, str]) -> Plan:
    for i, candidate in enumerate(target.defconfigs):
        if known.get(candidate) == target.arch:
            skipped = target.defconfigs[:i]
            why = (f"{', '.join(skipped)} not in this tree" if skipped
                   else "the target's defconfig")
            return Plan(target.arch, candidate, target, why)
    raise BbvError(f"none of target '{target.name}''s defconfigs ({', '.join(target.defconfigs)}) "
                   f"is in arch/{target.arch}/configs of this tree; pass --defconfig NAME")


def _target_for(catalog: Catalog, arch: str, defconfig: str,
                arch_name: str | None) -> Target | None:
    """The catalog target that builds this defconfig, so that its image gets recorded."""
    if arch_name and arch_name != arch:
        target = catalog.for_arch(arch_name)
        if target.arch != arch:
            raise UsageError(f"{defconfig} is an ARCH={arch} defconfig, not '{arch_name}'")
        return target
    for target in catalog.targets.values():
        if defconfig in target.defconfigs and target.arch == arch:
            return target
    return None


def _close(word: str, choices) -> str:
    """Close matches, compared without the _defconfig every name shares (or a misspelt one)."""
    def stem(name: str) -> str:
        return _DEFCONFIG_SUFFIX.sub("", name)

    stems = {stem(c): c for c in choices}
    close = difflib.get_close_matches(stem(word), list(stems), n=4, cutoff=0.7)
    return f" (close: {', '.join(stems[c] for c in close)})" if close else ""


# barebox compiles with -ggdb3; CFLAGS_KERNEL comes after it on every C compile (Makefile.lib's
# c_flags), so -g0 there drops the debug info and nothing else: the same code (.text and .data
# byte for byte on rv64i_defconfig), half the CPU time of an incremental build (smaller
# objects, faster links). For builds whose image alone is used (bbv bisect --exec).
NO_DEBUG_INFO = "CFLAGS_KERNEL=-g0"


def make_argv(jobs: int, arch: str, build_dir: Path, cross_compile: str, *goals: str,
              debug_info: bool = True) -> list[str]:
    return ["make", f"-j{jobs}", f"ARCH={arch}", f"O={build_dir}",
            f"CROSS_COMPILE={cross_compile}", *([] if debug_info else [NO_DEBUG_INFO]),
            *goals]


def is_build_dir(path: Path, record_name: str) -> bool:
    """Safe to wipe for --clean: empty, or holds a bbv record, or has Kbuild's output layout."""
    if not path.exists():
        return True
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    # bbv's own: the lock, and the record or its temporary file while it is written.
    ours = {n for n in names if n == ".bbv-lock" or n.startswith(f".{record_name}.")}
    if not names - ours or record_name in names:
        return True
    return all((path / m).exists() for m in MARKERS_OF_BUILD_DIR)


def images(build_dir: Path) -> list[Path]:
    """The bootable files in images/, without Kbuild's intermediate and hidden files."""
    folder = build_dir / "images"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and not _NOT_IMAGE.search(p.name))


def target_image(build_dir: Path, name: str) -> Path:
    """images/NAME, or NAME at the top (barebox.efi is built there)."""
    top = build_dir / name
    return top if top.is_file() and not (build_dir / "images" / name).is_file() \
        else build_dir / "images" / name


def step(line: str) -> tuple[str, str] | None:
    """("CC", "common/foo.o") for a Kbuild quiet line, else None."""
    match = _STEP.match(line)
    return (match.group(1), match.group(2).strip()) if match else None


def error_lines(lines: list[str], limit: int = 8) -> list[str]:
    """The first compiler/make error lines of a failed build."""
    return [line for line in lines if _ERROR.search(line)][:limit]


def parse_config(text: str) -> dict[str, str]:
    """CONFIG_X -> value ("n" for `# CONFIG_X is not set`)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if match := CONFIG_LINE.match(line):
            out[match.group(1)] = match.group(2)
        elif match := NOT_SET.match(line):
            out[match.group(1)] = "n"
    return out


def config_report(fragments: list[str], took: list[str], missed: list[str]) -> list[str]:
    """The kconfig lines: the files merged, then what was set and what was not (a single
    CONFIG_X=y shows once, under set or NOT set)."""
    files = [f for f in fragments if not CONFIG_LINE.match(f)]
    lines = [f"kconfig: merged {', '.join(files)}"] if files else []
    if took:
        lines.append(f"kconfig: set {', '.join(took)}")
    if missed:
        lines.append(f"kconfig: NOT set (missing dependency or unknown symbol): "
                     f"{', '.join(missed)}")
    return lines


def config_outcome(wanted: dict[str, str], final: dict[str, str]) -> tuple[list[str], list[str]]:
    """Which requested settings made it into .config, and which did not (missing dependency)."""
    took, missed = [], []
    for key, value in wanted.items():
        got = final.get(key, "n")
        (took if got == value else missed).append(f"{key}={value}" if got == value
                                                  else f"{key}={value} (got {got})")
    return took, missed


# barebox's top Makefile: `images/%: $(BAREBOX_PROPER) FORCE` builds one image through
# images/Makefile (older trees have only the `images` goal, which makes every image).
_IMAGE_RULE = re.compile(r"^images/%\s*:", re.M)


def image_goals(src: Path, arch: str, image: str) -> tuple[list[str], str]:
    """The make goals that build only the target's image, or [] and why a full build is needed.
    The `barebox` ELF (for gdb) is built on the way: every image depends on it."""
    if _rule_for(src / "arch" / arch / "Makefile", image) or _rule_for(src / "Makefile", image):
        return [image], ""
    if not _IMAGE_RULE.search(_read(src / "Makefile")):
        return [], "this tree's Makefile has no images/% goal (older barebox)"
    return [f"images/{image}"], ""


def _rule_for(makefile: Path, name: str) -> bool:
    """A top-level goal of that name (barebox.efi on x86), not an images/ one."""
    return re.search(rf"^{re.escape(name)}\s*:(?!=)", _read(makefile), re.M) is not None


def unknown_goal(lines: list[str], goal: str) -> bool:
    """make's output says Kbuild does not know how to make the goal (no rule, or barebox's
    `FILE_<image> empty!` for an image name images/Makefile does not define)."""
    name = goal.rsplit("/", 1)[-1]
    return any(f"No rule to make target '{goal}'" in line
               or f"No rule to make target '{name}'" in line
               or f"No rule to make target 'images/{name}'" in line
               or f"FILE_{name} empty!" in line for line in lines)
