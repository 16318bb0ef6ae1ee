"""util/download against a real HTTP server on loopback (tests/http_helpers.py): retries of
5xx answers and of bodies cut off, a 404 told by its status, checksums, and archives whose
members would land outside the destination."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from pathlib import Path

import pytest
from http_helpers import HttpServer

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.download import (
    Downloader,
    NotFound,
    extract,
    parse_sums,
    sha256_file,
)

DATA = bytes(range(256)) * 1024  # 256 KiB: several chunks
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    s = HttpServer()
    s.files["/f.bin"] = DATA
    yield s
    s.close()


def fast(**kw) -> Downloader:
    return Downloader(hint="offline? try --src", attempts=3, backoff=0.01, timeout=5, **kw)


def test_download_streams_hashes_and_reports_progress(server, tmp_path):
    seen = []
    got = fast().to_file(f"{server.url}/f.bin", tmp_path / "f", lambda d, t: seen.append((d, t)),
                         sha256=DIGEST.upper())
    assert got == DIGEST == sha256_file(tmp_path / "f")
    assert seen[-1] == (len(DATA), len(DATA)) and len(seen) > 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_5xx_answers_are_retried_then_given_up(server, tmp_path):
    server.unavailable["/f.bin"] = 2
    assert fast().to_file(f"{server.url}/f.bin", tmp_path / "f", lambda d, t: None) == DIGEST
    assert server.requests.count("/f.bin") == 3
    server.unavailable["/f.bin"] = 3
    with pytest.raises(BbvError, match=r"failed after 3 attempts: HTTP 503; offline\? try --src"):
        fast().text(f"{server.url}/f.bin")


def test_a_body_cut_off_is_fetched_again_from_the_start(server, tmp_path):
    server.truncate["/f.bin"] = 2
    assert fast().to_file(f"{server.url}/f.bin", tmp_path / "f", lambda d, t: None) == DIGEST
    assert server.requests.count("/f.bin") == 3 and (tmp_path / "f").read_bytes() == DATA
    server.truncate["/f.bin"] = 3
    with pytest.raises(BbvError, match="failed after 3 attempts: transfer interrupted"):
        fast().to_file(f"{server.url}/f.bin", tmp_path / "g", lambda d, t: None)


def test_404_is_not_found_with_the_callers_hint_and_not_retried(server, tmp_path):
    with pytest.raises(NotFound) as caught:
        fast(not_found="wrong --version?").text(f"{server.url}/missing")
    assert str(caught.value) == f"not found: {server.url}/missing (wrong --version?)"
    assert caught.value.url == f"{server.url}/missing"
    with pytest.raises(NotFound, match=r"^not found: \S+/gone$"):
        fast().to_file(f"{server.url}/gone", tmp_path / "f", lambda d, t: None)
    assert server.requests == ["/missing", "/gone"]


def test_other_4xx_and_bad_urls_and_a_server_that_is_down(server):
    with pytest.raises(BbvError, match=r"^ftp://x/y is not a URL bbv can download from"):
        fast().text("ftp://x/y")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BbvError, match="failed after 3 attempts: Connection refused"):
        fast().text(f"http://127.0.0.1:{port}/x")


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    with pytest.raises(BbvError, match=f"^checksum mismatch for f.bin: expected {'0' * 64}, "
                                       f"got {DIGEST}; the download was deleted$"):
        fast().to_file(f"{server.url}/f.bin", tmp_path / "f", lambda d, t: None,
                       sha256="0" * 64)
    assert not (tmp_path / "f").exists()


@pytest.mark.pure
def test_checksum_lists():
    armoured = (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{'a' * 64}  x.tar.xz\n"
                f"{'B' * 64} *dir/y.tar.xz\n-----BEGIN PGP SIGNATURE-----\n{'c' * 64}\n")
    assert parse_sums(armoured, "x.tar.xz") == "a" * 64
    assert parse_sums(armoured, "y.tar.xz") == "b" * 64  # binary mode, a directory, lower case
    assert parse_sums(armoured, "z.tar.xz") is None
    assert parse_sums(f"{'a' * 63}  x.tar.xz", "x.tar.xz") is None


def archive(tmp_path: Path, *extra: tarfile.TarInfo) -> Path:
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("top/file")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        inside = tarfile.TarInfo("top/link")
        inside.type, inside.linkname = tarfile.SYMTYPE, "file"
        tar.addfile(inside)
        for member in extra:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


def test_a_safe_archive_is_unpacked(tmp_path):
    extract(archive(tmp_path), tmp_path / "out")
    assert (tmp_path / "out" / "top" / "file").read_bytes() == b"ok"
    assert (tmp_path / "out" / "top" / "link").readlink() == Path("file")


@pytest.mark.parametrize("bad, says", [
    (member("../evil"), "member '../evil' would be written outside"),
    (member("/abs/evil"), "would be written outside"),
    (member("top/../../evil"), "would be written outside"),
    (member("top/esc", tarfile.SYMTYPE, "../../evil"), "points outside"),
    (member("top/abs", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
    (member("top/hard", tarfile.LNKTYPE, "../x"), "points outside"),
    (member("top/fifo", tarfile.FIFOTYPE), "is a device or fifo"),
])
def test_one_bad_member_refuses_the_whole_archive(tmp_path, bad, says):
    with pytest.raises(BbvError, match=f"^unsafe archive: .*{says}"):
        extract(archive(tmp_path, bad), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()


def test_a_broken_archive_is_one_error(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(BbvError, match="^cannot unpack a.tar.gz: "):
        extract(tmp_path / "a.tar.gz", tmp_path / "out")
