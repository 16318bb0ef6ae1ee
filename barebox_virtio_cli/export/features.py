"""Which labgrid `features` a bbv environment declares: the union of what barebox's own
environments (test/<arch>/*.yaml in the tree) declare for the same defconfig and QEMU machine,
kept to what a bbv boot can provide; the target file's `features` when the tree has none.

barebox's conftest.py turns features into QEMU options itself (virtio-mmio: the force-legacy
global; virtio-pci: disable-modern=off; testfs: a 9p share of LG_BUILDDIR/testfs and tftp= on
its `-nic user`), so a feature never needs a bbv device; export.jobs.conftest_owned says
which of bbv's own option groups the conftest would then add a second time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from barebox_virtio_cli.build.kbuild import defconfigs
from barebox_virtio_cli.build.record import read_record
from barebox_virtio_cli.targets.catalog import FEATURES, Target

# Features barebox's test/py reads that a bbv boot can provide. The others (bootable, efi,
# smbios) need a distribution image or firmware tables bbv does not set up.
TRANSPORTS = ("virtio-mmio", "virtio-pci")
SUPPORTED = (*TRANSPORTS, *FEATURES)


@dataclass
class TreeEnv:
    """One of barebox's labgrid files, as far as matching goes."""

    path: Path
    defconfig: str
    qemu_bin: str
    machine: str
    image: str
    features: list[str] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # test_devices.py: name -> text


def labgrid_loader():
    """PyYAML's safe loader, reading tags such as !template as plain scalars."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader, _suffix, node):
        return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None

    Loader.add_multi_constructor("!", any_tag)
    return Loader


def parse_env(path: Path, text: str) -> TreeEnv | None:
    """The matching facts of one barebox labgrid file; None if it is not a QEMU one."""
    import yaml

    try:
        data = yaml.load(text, Loader=labgrid_loader())  # noqa: S506 - a safe loader subclass
    except yaml.YAMLError:
        return None
    try:
        main = data["targets"]["main"]
        qemu = main["drivers"]["QEMUDriver"]
    except (KeyError, TypeError):
        return None
    features = main.get("features") or []
    devices = main.get("devices") if isinstance(main.get("devices"), dict) else {}
    return TreeEnv(path=path, defconfig=path.stem.rpartition("@")[2],
                   qemu_bin=str(qemu.get("qemu_bin", "")),
                   machine=str(qemu.get("machine", "")),
                   image=str(qemu.get("kernel") or qemu.get("bios") or ""),
                   features=[str(f) for f in features if isinstance(f, str)],
                   devices={str(k): str(v) for k, v in devices.items()})


def tree_envs(src: Path) -> list[TreeEnv]:
    """barebox's QEMU labgrid files in the tree (test/<arch>/*.yaml)."""
    envs = []
    for path in sorted(src.glob("test/*/*.yaml")):
        try:
            env = parse_env(path, path.read_text())
        except (OSError, UnicodeDecodeError):
            continue
        if env is not None:
            envs.append(env)
    return envs


def matching(envs: list[TreeEnv], defconfig: str, qemu_bin: str, machine: str) -> list[TreeEnv]:
    """barebox's files for the defconfig, QEMU binary and machine type (its options, such as
    virt's highmem=off, aside)."""
    kind = machine.partition(",")[0]
    return [e for e in envs if e.defconfig == defconfig and e.qemu_bin == qemu_bin
            and e.machine.partition(",")[0] == kind]


def union(target: Target, matched: list[TreeEnv]) -> list[str]:
    """bbv's transport first, then every supported feature the matched files declare (the
    target file's `features` when none matched), in first-seen order."""
    declared = [f for env in matched for f in env.features] if matched else target.features
    own = f"virtio-{target.transport}"
    keep = [f for f in declared if f in SUPPORTED and f not in TRANSPORTS]
    return list(dict.fromkeys([own, *keep]))


def devices(matched: list[TreeEnv], image: str) -> dict[str, str]:
    """The `devices` barebox's files for the same image list (what test_devices.py checks)."""
    found: dict[str, str] = {}
    for env in matched:
        if env.image == image:
            found.update(env.devices)
    return found


def dropped(target: Target, matched: list[TreeEnv]) -> list[str]:
    """Features barebox's files declare that bbv leaves out (unsupported or another transport)."""
    kept = set(union(target, matched))
    return list(dict.fromkeys(f for env in matched for f in env.features if f not in kept))


def image_defconfig(image: Path) -> str | None:
    """The defconfig `bbv build` recorded for the build an image came from (BUILD/images/X)."""
    for build_dir in (image.parent.parent, image.parent):
        record = read_record(build_dir)
        if record and record.defconfig:
            return record.defconfig
    return None


def tree_defconfig(target: Target, src: Path) -> str | None:
    """The first of the target's defconfigs the tree has (what `bbv build` would take)."""
    known = defconfigs(src)
    return next((d for d in target.defconfigs if d in known), None)


@dataclass
class Declared:
    features: list[str]
    devices: dict[str, str]
    source: str  # which files they came from, for the status line
    dropped: list[str]


def for_env(target: Target, src: Path | None, image: Path, qemu_bin: str,
            machine: str) -> Declared:
    """What a bbv environment for this boot declares, from the tree's files or the target's."""
    envs = tree_envs(src) if src is not None else []
    defconfig = image_defconfig(image) or (tree_defconfig(target, src) if src else None)
    matched = matching(envs, defconfig, qemu_bin, machine) if defconfig else []
    if matched:
        names = ", ".join(str(e.path.relative_to(src)) for e in matched)
        source = f"barebox's {names}"
    else:
        source = f"target file {target.path.name} (no test/*/*.yaml for {defconfig or '?'} " \
                 f"on {qemu_bin} -M {machine})"
    return Declared(union(target, matched), devices(matched, image.name), source,
                    dropped(target, matched))
