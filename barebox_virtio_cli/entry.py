"""The `bbv` executable. Until cli.main installs bbv's signal policy (util/signals), Ctrl-C ends
bbv the plain way, killed by SIGINT (the shell's 130) like SIGTERM and SIGHUP, instead of a
KeyboardInterrupt traceback from the middle of an import."""

import _signal

_signal.signal(_signal.SIGINT, _signal.SIG_DFL)


def main() -> None:
    from barebox_virtio_cli.cli import main as cli_main

    cli_main()
