"""mkdocs hook: a line `<!-- bbv-help: NAME -->` in a page becomes the `--help` text of
`bbv NAME` (and of each of its subcommands), rendered by click from the command itself, so the
site cannot disagree with `--help`. Every command of the `bbv` group must appear on exactly one
page, or the build fails."""

from __future__ import annotations

import re
from pathlib import Path

import click
from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- bbv-help: ([a-z-]+) -->$", re.MULTILINE)
WIDTH = 78  # what click wraps to on an 80-column terminal (80 less its 2-column margin)

_seen: dict[str, str] = {}  # command name -> page that renders it


def help_text(name: str) -> str:
    """The text with the builder's home directory shown as `~` (defaults such as
    `--workdir` are computed from it)."""
    return _help_text(name).replace(str(Path.home()), "~")


def _help_text(name: str) -> str:
    """`bbv NAME --help` and, for a group, `bbv NAME SUB --help` for each SUB, as fenced text."""
    from barebox_virtio_cli.cli import COMMANDS, cli

    root = click.Context(cli, info_name="bbv", terminal_width=WIDTH, **cli.context_settings)
    if name == "bbv":  # the group itself; its commands have their own pages
        return f"```text\n$ bbv --help\n{cli.get_help(root)}\n```"
    if name not in COMMANDS:
        raise PluginError(f"bbv-help: no command 'bbv {name}' (known: {', '.join(COMMANDS)})")
    command = cli.get_command(root, name)
    blocks = []
    stack = [(command, click.Context(command, info_name=name, parent=root))]
    while stack:
        cmd, ctx = stack.pop(0)
        blocks.append(f"```text\n$ {ctx.command_path} --help\n{cmd.get_help(ctx)}\n```")
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                child = cmd.get_command(ctx, sub)
                stack.append((child, click.Context(child, info_name=sub, parent=ctx)))
    return "\n\n".join(blocks)


def on_pre_build(config, **kwargs) -> None:
    _seen.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    def render(match: re.Match) -> str:
        name = match.group(1)
        if name in _seen:
            raise PluginError(f"bbv-help: 'bbv {name}' is rendered on {_seen[name]} and on "
                              f"{page.file.src_uri}; give each command one page")
        _seen[name] = page.file.src_uri
        return help_text(name)

    return MARKER.sub(render, markdown)


def on_post_build(config, **kwargs) -> None:
    from barebox_virtio_cli.cli import COMMANDS

    missing = sorted(({"bbv"} | set(COMMANDS)) - set(_seen))
    if missing:
        raise PluginError("bbv-help: no page renders the --help of "
                          + ", ".join(f"'bbv {name}'" for name in missing)
                          + " (add `<!-- bbv-help: NAME -->` to its page in docs/commands/)")
