"""Getting a barebox release for `bbv quickstart`: the tarball downloaded once into the cache
(streamed, retried, checked against its sha256), and unpacked safely into the work directory.
Which release and which checksum to trust is pure, in quickstart/plan.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from barebox_virtio_cli.build import kbuild
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.quickstart import plan as qs
from barebox_virtio_cli.util.atomic import replacing, write_text
from barebox_virtio_cli.util.download import Downloader, NotFound, extract, parse_sums, sha256_file
from barebox_virtio_cli.util.paths import cache_dir
from barebox_virtio_cli.util.status import say, spinning, transfer


def _detail(text: str) -> None:
    say(text, prefix="  ")


def download(version: str, given: str | None) -> Path:
    """The release tarball in the cache, downloaded and verified once; its sum is kept beside
    it, so that later runs, offline too, check the cached file against it."""
    name = qs.tarball_name(version)
    cache = cache_dir() / "barebox"
    archive, sum_file = cache / name, cache / f"{name}.sha256"
    expected = qs.pinned_sha256(version, given)
    if archive.is_file() and sum_file.is_file():
        kept = parse_sums(sum_file.read_text(), name)
        if kept and kept == (expected or kept) and sha256_file(archive) == kept:
            _detail(f"{name} from the cache ({archive})")
            return archive
    base = qs.mirror_url(os.environ)
    downloader = Downloader(hint=f"offline? pass --src DIR with a barebox source tree, or set "
                                 f"${qs.MIRROR_ENV} to a mirror",
                            not_found="no such barebox release? see --version")
    if expected is None:
        expected = _published_sum(downloader, f"{base}/{name}.sha256", name, version)
    cache.mkdir(parents=True, exist_ok=True)
    with replacing(archive, suffix=".part") as tmp:
        _detail(f"downloading {base}/{name}")
        with transfer(name) as update:
            downloader.to_file(f"{base}/{name}", tmp, update, sha256=expected)
    write_text(sum_file, f"{expected}  {name}\n")
    _detail(f"sha256 {expected} verified; cached in {archive}")
    return archive


def _published_sum(downloader: Downloader, url: str, name: str, version: str) -> str:
    try:
        text = downloader.text(url)
    except NotFound:  # unreachable is another error, which says what to do
        text = ""
    found = parse_sums(text, name)
    if found is None:
        raise BbvError(f"bbv knows no sha256 for barebox {version} and {url} gives none; pass "
                       "--sha256 HEX from a source you trust, or --src DIR")
    return found


def unpack(archive: Path, tree: Path) -> None:
    """Safe extraction (util/download's member checks) into a temporary directory beside the
    tree, moved into place only when it is a barebox tree."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=tree.parent))
    try:
        with spinning(lambda: f"unpacking {archive.name}"):
            extract(archive, tmp)
        found = [p for p in tmp.iterdir() if kbuild.is_barebox_tree(p)]
        if not found:
            raise BbvError(f"{archive.name} holds no barebox source tree (no top directory "
                           "with barebox's Makefile, Kconfig and arch/)")
        if tree.exists():
            shutil.rmtree(tree)  # a half-unpacked leftover: it is no barebox tree
        found[0].rename(tree)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
