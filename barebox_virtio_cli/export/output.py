"""Where `bbv export` writes: standard output without -o (or with `-o -`), the file given, or
one TARGET.yaml per target in a directory. Every destination is checked before anything is
written, so a refused call leaves every existing file as it was."""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.errors import UsageError

STDOUT = "-"


def destinations(output: str | None, targets: list[str], force: bool) -> list[str]:
    """One destination per target, in order: "-" (standard output) or a file path."""
    if output is not None and not output.strip():
        raise UsageError("-o '' is empty; give a file, a directory ending in '/', or '-' for "
                         "standard output")
    if output in (None, STDOUT):
        if len(targets) > 1:
            raise UsageError(f"{len(targets)} targets give {len(targets)} files: add -o DIR "
                             "(one DIR/TARGET.yaml each), or export one target at a time")
        return [STDOUT]
    path = Path(output)
    if path.is_dir() or output.endswith("/") or len(targets) > 1:
        if path.exists() and not path.is_dir():
            raise UsageError(f"-o {output}: exists and is not a directory (several targets, "
                             "or a path ending in '/', name a directory for TARGET.yaml files)")
        paths = [path / f"{name}.yaml" for name in targets]  # write() makes the directory
    else:
        if not path.parent.is_dir():
            raise UsageError(f"-o {path}: directory {path.parent} does not exist")
        paths = [path]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(existing)} exist{'s' if len(existing) == 1 else ''}; "
                         "add --force to replace")
    return [str(p) for p in paths]
