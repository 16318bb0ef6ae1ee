"""Files written atomically: into a hidden temporary file beside the target, moved into place
only when complete, so that a reader (or a concurrent bbv) never sees half a file and a failure
leaves the old file as it was. The one temp-then-rename routine of bbv; and copy_sparse, the
one copy of a (possibly sparse) disk image."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError


@contextmanager
def replacing(path: Path, replace: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a new, empty temporary file beside path; on success it becomes path. With
    replace=False an existing path (also one created meanwhile) is a UsageError, never
    replaced. The file gets the mode open() would give it (0o666 minus the umask)."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:  # a directory not writable (not root), missing, or /proc
        raise CannotWrite(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _move(tmp, path, replace)
    finally:
        tmp.unlink(missing_ok=True)


class CannotWrite(BbvError):
    """A file bbv cannot create: its directory takes no new file; strerror says why."""

    def __init__(self, path: Path, exc: OSError):
        self.strerror = exc.strerror or str(exc)
        super().__init__(f"cannot write {path}: {path.parent} takes no new file "
                         f"({self.strerror}); choose another directory")


def make_dirs(directory: Path, option: str) -> None:
    """Create directory (and its parents) for an output option, or fail in one line."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {directory}: cannot create the directory: "
                         f"{exc.strerror or exc}") from None


def write_text(path: Path, text: str, replace: bool = True) -> None:
    with replacing(path, replace) as tmp:
        tmp.write_text(text)


def _move(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails instead of replacing a file created meanwhile
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; add --force to replace it") from exc
    except OSError:  # no hard links on this filesystem
        if path.exists():
            raise UsageError(f"{path} exists; add --force to replace it") from None
        os.replace(tmp, path)


CHUNK = 1 << 20


def copy_sparse(source: Path, dest: Path) -> None:
    """Copy source (a file or block device) to a new dest with holes where source has holes
    (SEEK_DATA/SEEK_HOLE) or zeros: a 50 GB sparse image takes what its data takes."""
    with open(source, "rb") as src, open(dest, "wb") as out:
        size = src.seek(0, os.SEEK_END)
        for start, end in _data_extents(src.fileno(), size):
            src.seek(start)
            while start < end:
                block = src.read(min(CHUNK, end - start))
                if not block:
                    break
                if block.count(0) != len(block):
                    out.seek(start)
                    out.write(block)
                start += len(block)
        out.truncate(size)


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each stretch of fd that may hold data; all of it where the file system
    (or a block device) cannot tell."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole up to the end
                return
            yield offset, size  # no SEEK_DATA here
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end


def allocated(path: Path) -> int:
    """The bytes path takes on its file system (a block device: its whole size)."""
    st = path.stat()
    if stat.S_ISBLK(st.st_mode):
        with open(path, "rb") as fh:
            return fh.seek(0, os.SEEK_END)
    return st.st_blocks * 512


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
