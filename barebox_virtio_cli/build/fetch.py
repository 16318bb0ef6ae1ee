"""`bbv toolchain fetch` as a service: download a kernel.org crosstool GCC ("nolibc", as
barebox's CI uses), verify it against the published sha256sums, unpack it safely and install
it atomically into <data dir>/toolchains/gcc-<version>-nolibc-<triplet>/.

Mirror layout: <base>/<host>/<version>/<host>-gcc-<version>-nolibc-<triplet>.tar.xz with
sha256sums.asc beside it; the archive holds gcc-<version>-nolibc/<triplet>/bin/<triplet>-gcc."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util.validate import url_problem

DEFAULT_MIRROR = "https://mirrors.edge.kernel.org/pub/tools/crosstool/files/bin"
DEFAULT_VERSION = "15.2.0"  # the one barebox's CI container (test/Containerfile) uses
MIRROR_ENV = "BBV_TOOLCHAIN_MIRROR"
ATTEMPTS = 4
BACKOFF = 0.5  # seconds, doubled after each failed attempt
RETRY_STATUS = (500, 502, 503, 504)
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")
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
        from barebox_virtio_cli.errors import UsageError

        raise UsageError(f"--version '{version}' is not a GCC version like {DEFAULT_VERSION}")
    return version


def install_name(version: str, triplet: str) -> str:
    return f"gcc-{version}-nolibc-{triplet}"


def mirror_url(env: Mapping[str, str], config: Mapping[str, str]) -> str:
    """$BBV_TOOLCHAIN_MIRROR, else the config file's [toolchain] mirror, else kernel.org;
    a malformed one is a UsageError naming where it came from."""
    from barebox_virtio_cli.util.validate import check_mirror_url

    if env.get(MIRROR_ENV):
        return check_mirror_url(env[MIRROR_ENV], f"${MIRROR_ENV}")
    if config.get("mirror"):
        return check_mirror_url(config["mirror"], "the config file's [toolchain] mirror")
    return DEFAULT_MIRROR


def parse_sums(text: str, name: str) -> str | None:
    """The sha256 for name in a sha256sums(.asc) file; the PGP armour lines do not match."""
    for line in text.splitlines():
        match = _SUM_LINE.match(line.strip())
        if match and os.path.basename(match.group(2)) == name:
            return match.group(1).lower()
    return None


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def check_members(members: list[tarfile.TarInfo], dest: Path) -> None:
    """Refuse the whole archive if any member would land or link outside dest."""
    root = os.path.abspath(dest)
    for m in members:
        where = os.path.normpath(os.path.join(root, m.name))
        if os.path.isabs(m.name) or not _inside(root, where):
            raise BbvError(f"unsafe archive: member {m.name!r} would be written outside the "
                           "toolchain directory; nothing was installed")
        if m.issym() or m.islnk():
            base = os.path.dirname(where) if m.issym() else root
            link = os.path.normpath(os.path.join(base, m.linkname))
            if os.path.isabs(m.linkname) or not _inside(root, link):
                raise BbvError(f"unsafe archive: link {m.name!r} -> {m.linkname!r} points "
                               "outside the toolchain directory; nothing was installed")
        elif not (m.isfile() or m.isdir()):
            raise BbvError(f"unsafe archive: member {m.name!r} is a device or fifo; "
                           "nothing was installed")


def extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            check_members(members, dest)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BbvError(f"cannot unpack {archive.name}: {exc}; nothing was installed") from exc


def find_toolchain_dir(tree: Path, triplet: str) -> Path:
    for gcc in sorted(tree.glob(f"**/bin/{triplet}-gcc")):
        return gcc.parent.parent
    raise BbvError(f"the archive has no bin/{triplet}-gcc; nothing was installed")


class Downloader:
    """GET through a requests session whose adapter retries with exponential backoff (urllib3's
    Retry: refused or dropped connections, timeouts, 5xx answers); a body cut off mid-transfer,
    which Retry does not cover once the answer has begun, is fetched again as a whole. Streams
    to a file while hashing it."""

    def __init__(self, attempts: int = ATTEMPTS, backoff: float = BACKOFF, timeout: float = 30,
                 hint: str = f"offline? a mirror can be set with ${MIRROR_ENV} or --mirror"):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(total=attempts - 1, backoff_factor=backoff, status_forcelist=RETRY_STATUS,
                      allowed_methods=frozenset({"GET"}), raise_on_status=False)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.hint = hint  # what to do when the server cannot be reached

    def text(self, url: str) -> str:
        return self._failing_clearly(url, lambda: self._get(url).text)

    def to_file(self, url: str, path: Path, progress: Callable[[int, int], None]) -> str:
        """Download url into path; returns the sha256 of what was written."""
        return self._failing_clearly(url, lambda: self._restarting(url, path, progress))

    def _get(self, url: str, stream: bool = False):
        response = self.session.get(url, stream=stream, timeout=self.timeout)
        if response.status_code == 404:
            raise BbvError(f"not found on the mirror: {url} (wrong --version or mirror?)")
        response.raise_for_status()
        return response

    def _restarting(self, url: str, path: Path, progress: Callable[[int, int], None]) -> str:
        """The transfer again from the start after an interruption, up to attempts times."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return self._stream(url, path, progress)
            except _Interrupted as exc:
                if attempt == self.attempts:
                    raise BbvError(f"download of {url} failed after {self.attempts} attempts: "
                                   f"transfer interrupted ({exc}); {self.hint}") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _stream(self, url: str, path: Path, progress: Callable[[int, int], None]) -> str:
        import requests

        digest = hashlib.sha256()
        with self._get(url, stream=True) as response, path.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            try:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(done, total)
            except requests.RequestException as exc:
                raise _Interrupted(f"{type(exc).__name__} after {done} bytes") from exc
            if total and done != total:
                raise _Interrupted(f"got {done} of {total} bytes")
        return digest.hexdigest()

    def _failing_clearly(self, url: str, action: Callable[[], str]) -> str:
        """One line for what the retries could not overcome."""
        import requests

        problem = url_problem(url)
        if problem:
            raise BbvError(f"{url} is not a URL bbv can download from (it {problem}); "
                           f"{self.hint}")
        try:
            return action()
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise BbvError(f"{url} is not a URL bbv can download from ({exc}); "
                           f"{self.hint}") from None
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code and code < 500:
                raise BbvError(f"{url}: HTTP {code}") from exc
            last = f"HTTP {code or '?'}"
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = _reason(exc)
        raise BbvError(f"download of {url} failed after {self.attempts} attempts: {last}; "
                       f"{self.hint}")


class DownloadBar:
    """A rich download bar on a terminal, nothing otherwise."""

    def __init__(self, name: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self.bar = Progress("{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                            transient=True, disable=not console.is_terminal)
        self.task = self.bar.add_task(name, total=None)

    def __enter__(self):
        self.bar.start()
        return self.update

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total or None)


class _Interrupted(Exception):
    pass


def _reason(exc: Exception) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "timed out",
                  "Temporary failure in name resolution", "Network is unreachable"):
        if known in text:
            return known
    return type(exc).__name__


def fetch(root: Path, mirror: str, version: str, triplet: str, host: str,
          progress: Callable[[int, int], None], force: bool = False,
          downloader: Downloader | None = None,
          verify: Callable[[str], None] | None = None) -> Path:
    """Install the toolchain under root; returns its <prefix> (…/bin/<triplet>-).
    Works in a private temporary directory under root and renames at the end, so a failure
    at any point leaves no half-installed toolchain."""
    final = root / install_name(version, triplet)
    prefix = final / "bin" / f"{triplet}-"
    if (final / "bin" / f"{triplet}-gcc").is_file() and not force:
        return prefix
    downloader = downloader or Downloader()
    name = archive_name(version, triplet, host)
    base = f"{mirror}/{host}/{version}"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        expected = parse_sums(downloader.text(f"{base}/sha256sums.asc"), name)
        if expected is None:
            raise BbvError(f"{base}/sha256sums.asc lists no checksum for {name}; not installing "
                           "an unverified toolchain")
        got = downloader.to_file(f"{base}/{name}", work / name, progress)
        if got != expected:
            raise BbvError(f"checksum mismatch for {name}: expected {expected}, got {got}; "
                           "the download was deleted, nothing was installed")
        extract(work / name, work / "tree")
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
    from barebox_virtio_cli.targets.catalog import load_catalog
    from barebox_virtio_cli.util import userconfig
    from barebox_virtio_cli.util.paths import data_dir
    from barebox_virtio_cli.util.status import say

    catalog = load_catalog()
    target = catalog.targets.get(request.arch) or catalog.for_arch(request.arch)
    if not target.crosstool_triplet:
        raise UsageError(f"target '{target.name}' names no kernel.org toolchain "
                         "(crosstool_triplet); install a cross gcc yourself")
    from barebox_virtio_cli.util.validate import check_mirror_url

    version = check_version(request.version or DEFAULT_VERSION)
    base = check_mirror_url(request.mirror, "--mirror") if request.mirror is not None else \
        mirror_url(os.environ, userconfig.table(userconfig.load(), "toolchain"))
    name = install_name(version, target.crosstool_triplet)
    say(f"fetching {name} for {target.name} from {base}")
    with DownloadBar(name) as update:
        prefix = fetch(data_dir() / "toolchains", base, version, target.crosstool_triplet,
                       host_dir(), update, force=request.force,
                       verify=lambda p: _verify(p, target))
    return target, str(prefix)


def _verify(prefix: str, target: Target) -> None:
    from barebox_virtio_cli.build.toolchain import machine_matches, run_probe

    info = run_probe(Path(f"{prefix}gcc"))
    if info is None:
        raise BbvError(f"the downloaded {Path(prefix).name}gcc does not run on this host; "
                       "nothing was installed")
    if not machine_matches(info.machine, target.gcc_machine):
        raise BbvError(f"the downloaded compiler builds for {info.machine}, not for target "
                       f"'{target.name}'; nothing was installed")
