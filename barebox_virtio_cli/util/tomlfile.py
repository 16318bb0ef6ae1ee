"""Reading bbv's TOML files (targets, the user's config, doctor's package list)."""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.errors import BbvError


def read_toml(path: Path, what: str) -> dict:
    """The file as a dict; unreadable or invalid TOML is one error line naming the file."""
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise BbvError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BbvError(f"{path}: not valid TOML: {exc}") from exc
