"""`bbv toolchain fetch` as a service: download a kernel.org crosstool GCC ("nolibc", as
barebox's CI uses), verify it against the published sha256sums, unpack it safely and install
it atomically into <data dir>/toolchains/gcc-<version>-nolibc-<triplet>/.

Mirror layout: <base>/<host>/<version>/<host>-gcc-<version>-nolibc-<triplet>.tar.xz with
sha256sums.asc beside it; the archive holds gcc-<version>-nolibc/<triplet>/bin/<triplet>-gcc."""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build.toolchain import machine_matches, run_probe
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util import userconfig
from barebox_virtio_cli.util.download import Downloader, extract, parse_sums
from barebox_virtio_cli.util.paths import data_dir
from barebox_virtio_cli.util.status import Transferred, say, transfer
from barebox_virtio_cli.util.validate import check_mirror_url

DEFAULT_MIRROR = "https://mirrors.edge.kernel.org/pub/tools/crosstool/files/bin"
DEFAULT_VERSION = "15.2.0"  # the one barebox's CI container (test/Containerfile) uses
MIRROR_ENV = "BBV_TOOLCHAIN_MIRROR"
_HOSTS = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64",
          "ppc64le": "ppc64le"}


def host_dir(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    if machine.lower() not in _HOSTS:
        raise BbvError(f"kernel.org has no prebuilt cross compilers for a {machine} host; "
                       "install your distribution's cross gcc instead")
    return _HOSTS[machine.lower()]


def archive_name(version: str, triplet: str, host: str) -> str:
    return f"{host}-gcc-{version}-nolibc-{triplet}.tar.xz"


def check_version(version: str) -> str:
    """A GCC version as the mirror's directories name them (X.Y.Z)."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise UsageError(f"--version '{version}' is not a GCC version like {DEFAULT_VERSION}")
    return version


def install_name(version: str, triplet: str) -> str:
    return f"gcc-{version}-nolibc-{triplet}"


def mirror_url(env: Mapping[str, str], config: Mapping[str, str]) -> str:
    """$BBV_TOOLCHAIN_MIRROR, else the config file's [toolchain] mirror, else kernel.org;
    a malformed one is a UsageError naming where it came from."""
    if env.get(MIRROR_ENV):
        return check_mirror_url(env[MIRROR_ENV], f"${MIRROR_ENV}")
    if config.get("mirror"):
        return check_mirror_url(config["mirror"], "the config file's [toolchain] mirror")
    return DEFAULT_MIRROR


def find_toolchain_dir(tree: Path, triplet: str) -> Path:
    for gcc in sorted(tree.glob(f"**/bin/{triplet}-gcc")):
        return gcc.parent.parent
    raise BbvError(f"the archive has no bin/{triplet}-gcc; nothing was installed")


def mirror_downloader() -> Downloader:
    return Downloader(hint=f"offline? a mirror can be set with ${MIRROR_ENV} or --mirror",
                      not_found="wrong --version or mirror?")


def fetch(root: Path, mirror: str, version: str, triplet: str, host: str,
          progress: Transferred, force: bool = False,
          downloader: Downloader | None = None,
          verify: Callable[[str], None] | None = None) -> Path:
    """Install the toolchain under root; returns its <prefix> (…/bin/<triplet>-).
    Works in a private temporary directory under root and renames at the end, so a failure
    at any point leaves no half-installed toolchain."""
    final = root / install_name(version, triplet)
    prefix = final / "bin" / f"{triplet}-"
    if (final / "bin" / f"{triplet}-gcc").is_file() and not force:
        return prefix
    downloader = downloader or mirror_downloader()
    name = archive_name(version, triplet, host)
    base = f"{mirror}/{host}/{version}"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        expected = parse_sums(downloader.text(f"{base}/sha256sums.asc"), name)
        if expected is None:
            raise BbvError(f"{base}/sha256sums.asc lists no checksum for {name}; not installing "
                           "an unverified toolchain")
        downloader.to_file(f"{base}/{name}", work / name, progress, sha256=expected)
        try:
            extract(work / name, work / "tree")
        except BbvError as exc:
            raise BbvError(f"{exc}; nothing was installed") from None
        unpacked = find_toolchain_dir(work / "tree", triplet)
        if verify is not None:
            verify(f"{unpacked}/bin/{triplet}-")
        if final.exists():
            final.rename(work / "old")
        unpacked.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return prefix


@dataclass
class FetchRequest:
    arch: str  # an arch name or a bbv target
    version: str | None = None  # default: DEFAULT_VERSION
    mirror: str | None = None  # default: $BBV_TOOLCHAIN_MIRROR, the config file, kernel.org
    force: bool = False


def install(request: FetchRequest) -> tuple[Target, str]:
    """`bbv toolchain fetch`: the target the arch names and the installed compiler's prefix."""
    catalog = load_catalog()
    target = catalog.targets.get(request.arch) or catalog.for_arch(request.arch)
    if not target.crosstool_triplet:
        raise UsageError(f"target '{target.name}' names no kernel.org toolchain "
                         "(crosstool_triplet); install a cross gcc yourself")

    version = check_version(request.version or DEFAULT_VERSION)
    base = check_mirror_url(request.mirror, "--mirror") if request.mirror is not None else \
        mirror_url(os.environ, userconfig.table(userconfig.load(), "toolchain"))
    name = install_name(version, target.crosstool_triplet)
    say(f"fetching {name} for {target.name} from {base}")
    with transfer(name) as update:
        prefix = fetch(data_dir() / "toolchains", base, version, target.crosstool_triplet,
                       host_dir(), update, force=request.force,
                       verify=lambda p: _verify(p, target))
    return target, str(prefix)


def _verify(prefix: str, target: Target) -> None:
    info = run_probe(Path(f"{prefix}gcc"))
    if info is None:
        raise BbvError(f"the downloaded {Path(prefix).name}gcc does not run on this host; "
                       "nothing was installed")
    if not machine_matches(info.machine, target.gcc_machine):
        raise BbvError(f"the downloaded compiler builds for {info.machine}, not for target "
                       f"'{target.name}'; nothing was installed")
