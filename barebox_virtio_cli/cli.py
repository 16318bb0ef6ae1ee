"""The `bbv` command group. Subcommands live in barebox_virtio_cli.commands and are imported
only when invoked, so that `bbv run --dry-run` does not pay for the others' imports."""

from __future__ import annotations

import _signal as signal  # the module without its enums: start-up time
import importlib
import sys

import click

from barebox_virtio_cli import __version__
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.signals import Signalled, announce_stop, raising, signal_status
from barebox_virtio_cli.util.status import say

# name -> (module under barebox_virtio_cli.commands, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run", "Boot barebox in QEMU with VirtIO devices, or print the command."),
    "targets": ("targets", "targets", "List the QEMU targets bbv knows."),
    "console": ("console", "console", "Attach a terminal or pipe to a virtio console socket."),
    "build": ("build", "build", "Build barebox for a target out of tree with the right compiler."),
    "toolchains": ("toolchain", "toolchains", "Alias of 'bbv toolchain list'."),
    "toolchain": ("toolchain", "toolchain", "List the cross compilers found, or download one."),
    "doctor": ("doctor", "doctor", "Check what this host needs to build and boot each target."),
    "image": ("image", "image", "Make disk images for --blk (MBR, FAT, files copied in)."),
    "quickstart": ("quickstart", "quickstart", "Get, build, boot and check barebox in one go."),
    "export": ("export", "export", "Write a labgrid environment or LAVA job for a bbv run setup."),
    "replay": ("replay", "replay", "Replay a 'bbv run --record' recording, byte for byte."),
    "gdb": ("gdb", "gdb", "Attach gdb to 'bbv run --gdb' with barebox's symbols where it runs."),
    "test": ("test", "test", "Build targets and run barebox's own test suite (labgrid) on them."),
    "lava": ("lava", "lava", "Run bbv's checks as jobs on a LAVA farm and collect the results."),
    "bisect": ("bisect", "bisect", "Find the commit that broke a boot or a test (git bisect)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"barebox_virtio_cli.commands.{entry[0]}")
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, COMMANDS, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no such command '{name}'.{hint} See 'bbv --help'.", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bbv")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """bbv: build barebox, boot it in QEMU with VirtIO devices, and talk to its consoles."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    signal.signal(signal.SIGINT, signal.default_int_handler)  # entry.py's start-up policy ends
    try:
        with raising():  # SIGTERM/SIGHUP: every cleanup runs, then exit 128+N (util/signals)
            rc = cli.main(args=args, prog_name="bbv", standalone_mode=False)
    except click.exceptions.Abort as exc:  # click's for Ctrl-C (and EOF at a prompt)
        if isinstance(exc.__cause__, KeyboardInterrupt):
            sys.exit(announce_stop(signal.SIGINT))
        say("aborted")  # EOF at a prompt
        sys.exit(signal_status(signal.SIGINT))
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        if debug:
            raise
        _print_click_error(exc, args)
        sys.exit(exc.exit_code)
    except BbvError as exc:
        if debug:
            raise
        say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path the checks did not foresee (too long, /proc, not ours)
        if debug or exc.filename is None:
            raise
        say(f"error: {_shown(exc.filename)}: {exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(announce_stop(signal.SIGINT))
    except Signalled as exc:  # util/signals: stopped by signal N, exit 128+N
        sys.exit(announce_stop(exc.signum))
    sys.exit(rc if isinstance(rc, int) else 0)


def _shown(filename, most: int = 120) -> str:
    """A file name for an error line: one too long for any file system cut in the middle."""
    import os

    text = os.fsdecode(filename)
    return text if len(text) <= most else f"{text[:most // 2]}...{text[-most // 2:]}"


def _print_click_error(exc: click.ClickException, args: list[str]) -> None:
    """One line: click's usage errors otherwise print the whole usage block first."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    message = exc.format_message()
    name = getattr(exc, "option_name", "") or ""
    if isinstance(exc, click.NoSuchOption) and name[1:].replace(".", "", 1).isdigit():
        # click reads '--wait -1' as an unknown option '-1'
        message = f"{_option_before(name, args)}'{name}' is a negative number; give 0 or more"
    if "--help" in message:
        where = ""
    say(f"error: {message}{where}")


def _option_before(value: str, args: list[str]) -> str:
    """'--wait ' for '-1' in `... --wait -1` (or --wait=-1): the option a stray value belongs
    to, if any."""
    for arg in args:
        if arg.startswith("--") and arg.endswith(f"={value}"):
            return f"{arg.split('=', 1)[0]} "
    at = args.index(value) if value in args else 0
    before = args[at - 1] if at > 0 else ""
    return f"{before} " if before.startswith("-") and before != "--" else ""


if __name__ == "__main__":
    main()
