"""bbv's JSON files (build records, caches): read forgivingly, written atomically so that a
concurrent bbv never reads half a file."""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path

from barebox_virtio_cli.util.atomic import write_text


def read_object(path: Path) -> dict | None:
    """The file's JSON object; None if it is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: object, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_cache(path: Path, data: object) -> None:
    with suppress(OSError):  # a cache that cannot be written only costs time
        write_json(path, data)


def stamp(path: str | Path) -> list[int]:
    """What cache entries are keyed on besides the path: the file changed if this did."""
    st = os.stat(path)
    return [st.st_mtime_ns, st.st_size]
