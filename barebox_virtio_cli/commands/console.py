"""bbv console ENDPOINT: attach this terminal, or a pipe, to a virtio console."""

from __future__ import annotations

import math
import sys

import click

from barebox_virtio_cli.commands._options import Number
from barebox_virtio_cli.console.logic import DEFAULT_ESCAPE, parse_escape
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util import sockets
from barebox_virtio_cli.util.validate import SECONDS_MAX


def parse_wait(value: str | None, endpoint: str | None) -> tuple[float | None, str | None]:
    """--wait takes an optional SECONDS; in `--wait PATH` the PATH is the endpoint."""
    if value is None:
        return None, endpoint
    if value == "":
        return math.inf, endpoint
    try:
        seconds = float(value)
    except ValueError:
        if endpoint is None:
            return math.inf, value
        raise UsageError(f"--wait '{value}' is not a number of seconds") from None
    if not seconds >= 0:
        raise UsageError(f"--wait '{value}' must be 0 or more seconds")
    if SECONDS_MAX < seconds < math.inf:
        raise UsageError(f"--wait '{value}' is more than {SECONDS_MAX:g} seconds; leave out "
                         "SECONDS to wait for ever")
    return seconds, endpoint


def parse_endpoint(text: str) -> sockets.Endpoint:
    """A socket or pty PATH, unix:PATH, tcp:HOST:PORT (HOST may be [v6]) or tcp::PORT."""
    return sockets.parse(text, "ENDPOINT", "a socket path, unix:PATH, tcp:HOST:PORT or a pty",
                         bare_path=True)


@click.command()
@click.argument("endpoint", required=False, metavar="ENDPOINT")  # --wait PATH may give it
@click.option("-e", "--escape", default=DEFAULT_ESCAPE, show_default=True, metavar="KEY",
              help="Key that leaves (^X, ctrl-X, a character, or 'none'); twice sends it.")
@click.option("--linger", type=Number.seconds(0), default=1.0, show_default=True,
              metavar="SECONDS",
              help="After stdin ends, leave once the console is quiet this long.")
@click.option("-w", "--wait", is_flag=False, flag_value="", default=None, metavar="[SECONDS]",
              help="Wait for the socket to appear and accept (for ever without SECONDS).")
@click.option("-r", "--reconnect", is_flag=True,
              help="When the other side goes away, wait for it to come back and carry on.")
@click.option("--log", "log_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Append everything received to FILE.")
@click.option("--timestamps", is_flag=True, help="With --log: a line log with local times.")
@click.option("--no-replay", is_flag=True,
              help="Skip the output since boot that bbv run's console server replays first.")
def console(endpoint: str | None, escape: str, linger: float, wait: str | None, reconnect: bool,
            log_path: str | None, timestamps: bool, no_replay: bool) -> None:
    """Attach to a virtio console: a unix socket PATH (or unix:PATH), tcp:HOST:PORT, or a pty.

    On a terminal every key goes through (Ctrl-C too) until the escape key. On pipes it works
    like 'socat PATH -'.

    \b
    Examples:
      bbv console /run/user/1000/bbv/vexpress.console
      printf 'version\\n' | bbv console /tmp/foo --linger 0.5
      bbv console --wait 10 --reconnect --log con.log tcp:localhost:4444
    """
    wait_seconds, endpoint = parse_wait(wait, endpoint)
    if endpoint is None:
        raise UsageError("missing ENDPOINT: a socket path, unix:PATH, tcp:HOST:PORT or a pty")
    if timestamps and not log_path:
        raise UsageError("--timestamps needs --log FILE")
    from barebox_virtio_cli.console.relay import Options, run_logged

    opts = Options(parse_endpoint(endpoint), escape=parse_escape(escape), linger=linger,
                   wait=wait_seconds, reconnect=reconnect, timestamps=timestamps,
                   replay=not no_replay, pty=sockets.is_bare(endpoint))
    sys.exit(run_logged(opts, log_path))
