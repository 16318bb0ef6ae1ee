"""bbv's status lines: `bbv: ...` on stderr, never on stdout (which carries data)."""

from __future__ import annotations

import click


def say(text: str) -> None:
    click.echo(f"bbv: {text}", err=True)
