"""The target record: one QEMU target as its configs/*.toml file describes it, validated, and
the catalog of them with lookups by name and arch. Pure: reading the files and caching them is
targets/catalog.py."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError

DEVICE_KINDS = ("blk", "rng", "console", "input", "net", "9p")
# labgrid features of barebox's test suite a bbv boot can provide (export/features.py). The
# transport feature (virtio-mmio/virtio-pci) follows `transport` and is not listed in a file.
FEATURES = ("pci", "network", "testfs", "barebox-state", "policies", "modules")
# What `bbv test --full` may give a target beyond barebox's yaml (testsuite/full.py).
FULL_EXTRAS = ("network", "framebuffer")


@dataclass
class Target:
    name: str
    path: Path
    description: str
    arch: str  # barebox's ARCH= (ARMv8 builds with ARCH=arm)
    bits: int
    defconfigs: list[str]
    image: str
    load: str  # "kernel" or "bios"
    qemu: str
    qemu_package: str
    machine: str
    cpu: str
    memory: str
    transport: str  # "mmio" or "pci"
    console: str  # barebox's device name for the virtio console, e.g. "cs1"
    console_active: bool  # barebox activates the virtio console by itself
    fw_cfg: bool
    arch_names: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=lambda: list(DEVICE_KINDS))
    mmio_transports: int = 0
    mmio_pin_bus: bool = False
    fw_cfg_min_qemu: str = ""
    firmware: list[str] = field(default_factory=list)
    firmware_package: str = ""
    qemu_firmware: str = ""  # what QEMU loads from its data dir when no -bios is given
    kconfig: list[str] = field(default_factory=list)
    # Compiler prefixes bbv searches for, most preferred first ("" = the host's own gcc).
    toolchain_prefixes: list[str] = field(default_factory=list)
    # fnmatch patterns for the CPU part of `gcc -dumpmachine` a compiler must report.
    gcc_machine: list[str] = field(default_factory=list)
    # The arch in MAKEALL's CROSS_COMPILE_<arch> (arm64 for ARMv8 although ARCH=arm); default arch.
    cross_compile_arch: str = ""
    # kernel.org crosstool triplet that `bbv toolchain fetch` downloads, e.g. "aarch64-linux".
    crosstool_triplet: str = ""
    # Debian package with a matching cross compiler, suggested when none is found.
    toolchain_package: str = ""
    # QEMU generates a device tree for the machine (--dump-dtb, --dtb).
    device_tree: bool = False
    # QEMU arguments --graphic adds (ramfb on mmio, VGA on malta, the std VGA of pc).
    graphic: list[str] = field(default_factory=list)
    # Size of the machine's first pflash bank in MiB, where a "bios" target boots from (--flash).
    pflash_mib: int = 0
    # labgrid features for `bbv export labgrid` when the tree has no test/<arch>/*.yaml for the
    # target's defconfig and machine (barebox's own files win).
    features: list[str] = field(default_factory=list)
    # Why barebox's virtio-net does not work on this target ("" = it works), and a QEMU NIC
    # model that does: `bbv run --net` warns, LAVA jobs give the template's NIC that model.
    net_issue: str = ""
    net_fallback: str = ""
    # The barebox labgrid environment (test/<arch>/*.yaml of the tree) this target boots like.
    labgrid_env: str = ""
    # What `bbv test --full` gives this target, each checked on real barebox: "network" (the
    # labgrid feature: the NIC barebox's conftest adds has a barebox driver) and
    # "framebuffer" (the `graphic` display device, for test_fbtest.py).
    full_extras: list[str] = field(default_factory=list)
    # The machine `bbv test --full` boots instead of `machine` when its extras need another
    # (ARM32 virt: highmem=off keeps PCI's ECAM below 4 GiB, where a 32-bit barebox finds it).
    full_machine: str = ""
    # How many -serial slots the machine wires to devices (serial_hd(0..N-1) in QEMU's board
    # code): a recorded virtio console's chardev takes the next one (qemu/args.recorded_chardev).
    serial_ports: int = 1


_CHOICES = {
    "load": ("kernel", "bios"),
    "transport": ("mmio", "pci"),
    "bits": (32, 64),
}
# list fields: what their entries are called in an error, and the entries known
_LISTS = {
    "devices": ("kinds", DEVICE_KINDS),
    "features": ("features", FEATURES),
    "full_extras": ("entries", FULL_EXTRAS),
}


def _field_types() -> dict[str, type]:
    types = {"str": str, "int": int, "bool": bool, "list[str]": list}
    return {f.name: types[str(f.type)] for f in fields(Target) if f.name not in ("name", "path")}


def _required() -> set[str]:
    from dataclasses import MISSING

    return {
        f.name
        for f in fields(Target)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in ("name", "path")
    }


_KIND_NAMES = {list: "a list of strings", int: "an integer", str: "a string", bool: "true or false",
               dict: "a table"}


def parse_target(path: Path, data: dict) -> Target:
    """Validate one target file's contents; every error names the file and the field."""
    types = _field_types()
    for key in data:
        if key not in types:
            import difflib

            close = difflib.get_close_matches(key, types, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise BbvError(f"{path}: unknown field '{key}'{hint}")
    for key in sorted(_required() - data.keys()):
        raise BbvError(f"{path}: missing required field '{key}'")
    for key, value in data.items():
        want = types[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if ok and want is list:
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            kind = _KIND_NAMES.get(want, want.__name__)
            raise BbvError(f"{path}: field '{key}' must be {kind}, not {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise BbvError(f"{path}: field '{key}' must be one of {_CHOICES[key]}, not {value!r}")
    for key, (what, known) in _LISTS.items():
        bad = [v for v in data.get(key, []) if v not in known]
        if bad:
            raise BbvError(f"{path}: field '{key}' has unknown {what} {bad}; known: {known}")
    if data.get("full_extras") and "framebuffer" in data["full_extras"] and \
            not data.get("graphic"):
        raise BbvError(f"{path}: field 'full_extras' names framebuffer, but 'graphic' gives "
                       "no display device")
    if data["transport"] == "mmio" and data.get("mmio_transports", 0) <= 0:
        raise BbvError(f"{path}: field 'mmio_transports' must be set for an mmio target")
    if data.get("pflash_mib", 0) < 0 or (data.get("pflash_mib") and data["load"] != "bios"):
        raise BbvError(f"{path}: field 'pflash_mib' must be a positive size, and only a target "
                       "that loads barebox as firmware (load = \"bios\") boots from flash")
    return Target(name=path.stem, path=path, **data)


@dataclass
class Catalog:
    targets: dict[str, Target]

    def names(self) -> list[str]:
        return sorted(self.targets)

    def get(self, name: str) -> Target:
        if name in self.targets:
            return self.targets[name]
        raise UsageError(f"unknown target '{name}'{_suggest(name, self.targets)}; "
                         "'bbv targets' lists them")

    def for_arch(self, arch: str) -> Target:
        for target in self.targets.values():
            if arch in target.arch_names:
                return target
        known = sorted({a for t in self.targets.values() for a in t.arch_names})
        raise UsageError(f"unknown arch '{arch}'{_suggest(arch, known)}; known: {', '.join(known)}")

    def resolve(self, name: str | None, arch: str | None, default: str = "vexpress") -> Target:
        for option, given in (("--target", name), ("--arch", arch)):
            if given is not None and not given.strip():
                raise UsageError(f"{option} '{given}' is empty; 'bbv targets' lists the names")
        if name and arch:
            target = self.get(name)
            if arch not in target.arch_names and arch != target.arch:
                raise UsageError(f"--target {name} is not a target of arch '{arch}' (its arch "
                                 f"is '{target.arch}'); give one of the two")
            return target
        if name:
            return self.get(name)
        if arch:
            return self.for_arch(arch)
        return self.get(default)


def _suggest(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
