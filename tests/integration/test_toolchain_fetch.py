"""`bbv toolchain fetch` against a real HTTP server on loopback that serves a kernel.org-style
mirror: a real .tar.xz holding a small compiler stand-in, and a PGP-armoured sha256sums.asc."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import BBV, ROOT, bbv, need
from http_helpers import HttpServer

from barebox_virtio_cli.build import fetch as tf
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.download import Downloader, parse_sums

VERSION = "15.2.0"
TRIPLET = "aarch64-linux"
HOST = tf.host_dir()
NAME = tf.archive_name(VERSION, TRIPLET, HOST)
TOP = f"gcc-{VERSION}-nolibc/{TRIPLET}"
# The stand-in reports itself as GCC 15.2.0 and compiles with Debian's aarch64 compiler.
GCC = f"""#!/bin/sh
case "$1" in
  -dumpmachine) echo {{machine}} ;;
  -dumpfullversion|-dumpversion) echo {VERSION} ;;
  *) exec aarch64-linux-gnu-gcc "$@" ;;
esac
"""


def make_archive(machine: str = TRIPLET, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for d in ("gcc-15.2.0-nolibc", TOP, f"{TOP}/bin"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        data = GCC.format(machine=machine).encode()
        info = tarfile.TarInfo(f"{TOP}/bin/{TRIPLET}-gcc")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{TOP}/bin/{TRIPLET}-cc")  # a link inside: allowed
        link.type, link.linkname = tarfile.SYMTYPE, f"{TRIPLET}-gcc"
        tar.addfile(link)
        for member in extra or []:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buf.getvalue()


def sums(entries: dict[str, bytes | str]) -> bytes:
    lines = [v if isinstance(v, str) else hashlib.sha256(v).hexdigest() for v in entries.values()]
    body = "".join(f"{h}  {n}\n" for h, n in zip(lines, entries, strict=True))
    return (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{body}"
            "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n"
            ).encode()


class Mirror(HttpServer):
    """A kernel.org-style crosstool mirror."""

    def publish(self, archive: bytes, listed: bytes | str | None = None) -> None:
        base = f"/{HOST}/{VERSION}"
        self.files[f"{base}/{NAME}"] = archive
        self.files[f"{base}/sha256sums.asc"] = sums(
            {f"{HOST}-gcc-{VERSION}-nolibc-arm-linux-gnueabi.tar.xz": b"other",
             NAME: archive if listed is None else listed})


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.close()


@pytest.fixture
def root(bbv_dirs) -> Path:
    return Path(os.environ["BBV_DATA_DIR"]) / "toolchains"




def fetch(root: Path, mirror: Mirror, **kw) -> Path:
    fast = Downloader(hint="offline?", attempts=3, backoff=0.01, timeout=5)
    return Path(tf.fetch(root, mirror.url, VERSION, TRIPLET, HOST, lambda d, t: None,
                         downloader=fast, **kw))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@need("make", "aarch64-linux-gnu-gcc")
def test_fetch_installs_and_build_finds_it(mirror, root, tmp_path):
    mirror.publish(make_archive())
    done = bbv("toolchain", "fetch", "arm64", "--mirror", mirror.url)
    assert done.returncode == 0, done.stderr
    gcc = root / f"gcc-{VERSION}-nolibc-{TRIPLET}" / "bin" / f"{TRIPLET}-gcc"
    assert os.access(gcc, os.X_OK)
    assert (gcc.parent / f"{TRIPLET}-cc").is_symlink()
    assert leftovers(root) == [f"gcc-{VERSION}-nolibc-{TRIPLET}"]  # no temporary dirs left
    listed = json.loads(bbv("toolchain", "list", "armv8", "--json").stdout)[0]
    assert listed["use"] == str(gcc)[:-3]
    assert json.loads(bbv("toolchains", "armv8", "--json").stdout)[0] == listed  # the alias
    assert any(f["source"].startswith("bbv toolchain fetch") and f["version"] == VERSION
               for f in listed["found"])
    # Installed already: nothing is downloaded again (the mirror comes from the environment).
    before = len(mirror.requests)
    again = bbv("toolchain", "fetch", "armv8", env={tf.MIRROR_ENV: mirror.url})
    assert again.returncode == 0 and len(mirror.requests) == before
    # bbv build uses it with no flags, ahead of the Debian compiler on PATH.
    tree = tmp_path / "src"
    shutil.copytree(ROOT / "tests" / "fixtures" / "minibarebox", tree)
    built = bbv("build", "armv8", cwd=tree)
    assert built.returncode == 0, built.stderr
    assert f"toolchain: {str(gcc)[:-3]} (GCC {VERSION}, {TRIPLET}) from bbv toolchain fetch" \
        in built.stderr
    record = json.loads((tree / "build-armv8" / "bbv-build.json").read_text())
    assert record["toolchain"] == str(gcc)[:-3]


def test_checksum_mismatch_installs_nothing(mirror, root):
    mirror.publish(make_archive(), listed="0" * 64)
    done = bbv("toolchain", "fetch", "arm64", "--mirror", mirror.url)
    assert done.returncode == 1
    assert f"checksum mismatch for {NAME}: expected {'0' * 64}" in done.stderr
    assert leftovers(root) == []


def test_unlisted_archive_is_not_installed(mirror, root):
    mirror.publish(make_archive())
    mirror.files[f"/{HOST}/{VERSION}/sha256sums.asc"] = sums({"other.tar.xz": b"x"})
    with pytest.raises(BbvError, match="lists no checksum"):
        fetch(root, mirror)
    assert leftovers(root) == []


def test_interrupted_transfer_is_retried_then_given_up(mirror, root):
    mirror.publish(make_archive())
    path = f"/{HOST}/{VERSION}/{NAME}"
    mirror.truncate[path] = 1
    fetch(root, mirror)  # cut short once, complete on the retry
    assert mirror.requests.count(path) == 2
    other = root.parent / "other"
    mirror.truncate[path] = 99
    with pytest.raises(BbvError, match="failed after 3 attempts: transfer interrupted"):
        fetch(other, mirror)
    assert leftovers(other) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stopped_fetch_exits_128_plus_n_and_leaves_nothing(mirror, root, sig):
    """The exit policy of every command (util/signals): cleanup runs, then 128+N."""
    mirror.publish(make_archive())
    path = f"/{HOST}/{VERSION}/{NAME}"
    mirror.stall.add(path)
    proc = subprocess.Popen([*BBV, "toolchain", "fetch", "arm64", "--mirror", mirror.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while path not in mirror.requests or not any(root.glob(".fetch-*/*.tar.xz")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 128 + sig
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert leftovers(root) == []  # the half download and its directory are gone


def test_server_errors_are_retried_by_the_adapter(mirror, root):
    mirror.publish(make_archive())
    sums_path = f"/{HOST}/{VERSION}/sha256sums.asc"
    mirror.unavailable[sums_path] = 2
    fetch(root, mirror)  # two 503s, then the answer (urllib3's Retry, 3 attempts)
    assert mirror.requests.count(sums_path) == 3
    mirror.unavailable[sums_path] = 3
    with pytest.raises(BbvError, match="failed after 3 attempts: HTTP 503"):
        fetch(root.parent / "other", mirror)


@pytest.mark.parametrize("member, kind", [
    (("../evil", tarfile.REGTYPE, ""), "would be written outside"),
    ((f"{TOP}/../../../evil", tarfile.REGTYPE, ""), "would be written outside"),
    ((f"{TOP}/bin/esc", tarfile.SYMTYPE, "../../../../outside"), "points outside"),
    ((f"{TOP}/bin/abs", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
    ((f"{TOP}/bin/hard", tarfile.LNKTYPE, "../x"), "points outside"),
    ((f"{TOP}/bin/dev", tarfile.CHRTYPE, ""), "device or fifo"),
])
def test_unsafe_archive_member_refuses_the_whole_archive(mirror, root, member, kind):
    name, kind_type, linkname = member
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind_type, linkname
    if kind_type == tarfile.REGTYPE:
        info.size = 4
    mirror.publish(make_archive(extra=[info]))
    with pytest.raises(BbvError, match=f"unsafe archive: .*{kind}"):
        fetch(root, mirror)
    assert leftovers(root) == []
    assert not (root.parent / "evil").exists() and not (root.parent.parent / "evil").exists()


def test_compiler_for_the_wrong_arch_is_not_installed(mirror, root):
    mirror.publish(make_archive(machine="x86_64-linux"))
    done = bbv("toolchain", "fetch", "arm64", "--mirror", mirror.url)
    assert done.returncode == 1
    assert "builds for x86_64-linux, not for target 'armv8'" in done.stderr
    assert leftovers(root) == []


def test_server_down_is_one_line(root):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = bbv("toolchain", "fetch", "arm64", env={tf.MIRROR_ENV: f"http://127.0.0.1:{port}"})
    assert done.returncode == 1
    assert "failed after 4 attempts: Connection refused" in done.stderr
    assert done.stderr.count("\n") == 2 and "Traceback" not in done.stderr  # note + error
    assert leftovers(root) == []


def test_toolchains_is_an_alias_of_toolchain_list():
    assert "An alias of 'bbv toolchain list'" in bbv("toolchains", "--help").stdout
    group = bbv("toolchain", "--help").stdout
    assert "list " in group and "fetch " in group


def test_unknown_version_and_arch(mirror):
    mirror.publish(make_archive())
    done = bbv("toolchain", "fetch", "arm64", "--version", "9.9.9", "--mirror", mirror.url)
    assert done.returncode == 1
    assert done.stderr.endswith(f"bbv: error: not found: {mirror.url}/{HOST}/9.9.9/"
                                "sha256sums.asc (wrong --version or mirror?)\n")
    done = bbv("toolchain", "fetch", "sparc")
    assert done.returncode == 2 and "unknown arch 'sparc'" in done.stderr


@pytest.mark.pure
def test_sums_parser_and_mirror_order():
    text = sums({NAME: "a" * 64}).decode()
    assert parse_sums(text, NAME) == "a" * 64
    assert parse_sums(text, "x.tar.xz") is None
    assert tf.mirror_url({tf.MIRROR_ENV: "http://env/"}, {"mirror": "http://cfg"}) == "http://env"
    assert tf.mirror_url({}, {"mirror": "http://cfg"}) == "http://cfg"
    assert tf.mirror_url({}, {}) == tf.DEFAULT_MIRROR
