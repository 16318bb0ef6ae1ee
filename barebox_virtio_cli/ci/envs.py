"""barebox's labgrid environments as CI picks them (pure): the yamls of a job's lgenv glob,
what each one needs from the host (QEMU binary and machine, -bios firmware, the job's OS image),
and what a host lacks, given the facts ci/matrix.py gathers."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from barebox_virtio_cli.ci.workflow import CiJob


@dataclass
class CiEnv:
    name: str  # the yaml's file name without .yaml, as CI names its JUnit file
    path: str  # relative to the tree, as the workflow passes it to --lg-env
    text: str
    drivers: list[str] = field(default_factory=list)
    qemu_bin: str = ""
    machine: str = ""
    firmware: list[str] = field(default_factory=list)  # -bios NAME of extra_args (QEMU's dirs)
    bios: bool = False  # the yaml gives QEMU a -bios (QEMUDriver's bios, or in extra_args)
    default_firmware: str = ""  # what QEMU loads without -bios (set by ci/matrix.py)

    def uses(self, word: str) -> bool:
        """`grep -w WORD yaml`, as the workflow's feature discovery does."""
        return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", self.text) is not None

    def tested_by_ci(self, drivers: list[str]) -> bool:
        """The workflow's `grep -wq '\\(QEMUDriver\\|ExternalConsoleDriver\\):'`."""
        return not drivers or any(re.search(rf"\b{d}:", self.text) for d in drivers)


def parse_env(path: str, text: str, data: dict | None) -> CiEnv:
    """One yaml; data is its parsed content (None when it does not parse)."""
    name = path.rpartition("/")[2].removesuffix(".yaml")
    env = CiEnv(name, path, text)
    try:
        drivers = data["targets"]["main"]["drivers"]
    except (KeyError, TypeError):
        return env
    if not isinstance(drivers, dict):
        return env
    env.drivers = [str(d) for d in drivers]
    qemu = drivers.get("QEMUDriver")
    if isinstance(qemu, dict):
        env.qemu_bin = str(qemu.get("qemu_bin") or "")
        env.machine = str(qemu.get("machine") or "")
        extra = str(qemu.get("extra_args") or "")
        env.firmware = bios_files(extra)
        env.bios = bool(qemu.get("bios")) or "-bios" in extra.split()
    return env


def bios_files(extra_args: str) -> list[str]:
    """-bios NAME in a QEMUDriver's extra_args where NAME is a bare file name (QEMU looks it
    up in its data directories, e.g. Debian's OVMF.fd)."""
    try:
        words = shlex.split(extra_args)
    except ValueError:
        words = extra_args.split()
    return [words[i + 1] for i, w in enumerate(words[:-1])
            if w == "-bios" and "/" not in words[i + 1] and words[i + 1] not in ("none",
                                                                               "default")]


def default_firmware(env: CiEnv, defaults: dict[tuple[str, str], str]) -> str:
    """The firmware QEMU loads from its data directories for the env's binary and machine when
    the yaml gives no -bios (riscv's virt: OpenSBI); defaults: (binary, machine) -> file, as
    bbv's targets know it (qemu_firmware)."""
    if env.bios or not env.qemu_bin:
        return ""
    return defaults.get((env.qemu_bin, env.machine.split(",", 1)[0]), "")


CONFIG_SET = re.compile(r"^(CONFIG_\w+)=(.*)$")


def config_options(texts: list[str]) -> set[str]:
    """The CONFIG_ symbols a defconfig and fragments set to anything but n."""
    return {m.group(1) for text in texts for line in text.splitlines()
            if (m := CONFIG_SET.match(line.strip())) and m.group(2) != "n"}


def build_missing(needs: list[dict], options: set[str] | None,
                  problems: dict[str, str | None]) -> list[Missing]:
    """What a job's build runs that this host lacks: the needs (packages.toml build_need)
    whose config option the job sets (options None: every option, allyesconfig), with the
    problem found for each (problems: need name -> None when the host has it)."""
    out = []
    for need in needs:
        if options is not None and need["config"] not in options:
            continue
        problem = problems.get(need["name"])
        if problem:
            out.append(Missing(need["name"], f"{problem}; {need['config']}: {need['why']}",
                               need.get("debian", "")))
    return out


@dataclass(frozen=True)
class Missing:
    item: str  # what is missing, e.g. "qemu-system-ppc"
    detail: str
    package: str = ""  # the Debian package that brings it

    def __str__(self) -> str:
        return f"{self.item}: {self.detail}" + (f" (Debian: {self.package})"
                                                 if self.package else "")


@dataclass(frozen=True)
class EnvFacts:
    """What the host has, as far as a job's envs go; gathered by ci/matrix.py."""

    qemu: dict[str, str | None]  # binary name -> path
    machines: dict[str, list[str] | None]  # binary name -> its machines (None: not probed)
    firmware: dict[str, str | None]  # file name -> path found
    osimg: bool  # the job's OS image is in the tree
    osimg_hint: str  # how CI gets it
    toolchain: Missing | None  # why the job cannot be built, if it cannot
    build_tools: list[Missing]  # host tools the job's build runs that the host lacks
    qemu_packages: dict[str, str]  # binary -> Debian package
    firmware_packages: dict[str, str]  # file name -> Debian package


def missing(env: CiEnv, job: CiJob, facts: EnvFacts) -> list[Missing]:
    """What this host lacks to run the env ([]: it can run it)."""
    out = ([facts.toolchain] if facts.toolchain else []) + list(facts.build_tools)
    if env.qemu_bin:
        if not facts.qemu.get(env.qemu_bin):
            out.append(Missing(env.qemu_bin, "not on PATH",
                               facts.qemu_packages.get(env.qemu_bin, "")))
        else:
            machines = facts.machines.get(env.qemu_bin)
            machine = env.machine.split(",", 1)[0]
            if machines is not None and machine and machine not in machines:
                out.append(Missing(env.qemu_bin, f"this QEMU has no machine '{machine}'",
                                   "a newer QEMU"))
    for name in env.firmware:
        if not facts.firmware.get(name):
            out.append(Missing(name, "firmware not in QEMU's data directories",
                               facts.firmware_packages.get(name, "")))
    name = env.default_firmware
    if name and not facts.firmware.get(name):
        package = facts.firmware_packages.get(name, "")
        out.append(Missing(name, f"what {env.qemu_bin} -M {env.machine} loads without -bios, "
                           "not in QEMU's data directories"
                           + ("" if package else " (Debian does not package it)"), package))
    if job.osimg and env.uses(job.osimg) and not facts.osimg:
        out.append(Missing(job.osimg, f"OS image not in the tree; {facts.osimg_hint}"))
    return out
