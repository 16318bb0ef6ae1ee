"""Files written atomically: into a hidden temporary file beside the target, moved into place
only when complete, so that a reader (or a concurrent bbv) never sees half a file and a failure
leaves the old file as it was. The one temp-then-rename routine of bbv."""

from __future__ import annotations

import os
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
