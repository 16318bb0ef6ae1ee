"""click options shared by several commands: the devices of a boot (`bbv run`, `bbv export`,
`bbv test`), its machine (`bbv run`, `bbv export`) and the scripted-boot options of `bbv run`.
Each option's name is a field of run.request.RunRequest and means one thing everywhere."""

from __future__ import annotations

import click

from barebox_virtio_cli.session.options import DEFAULT_TIMEOUT
from barebox_virtio_cli.util.validate import SECONDS_MAX


def _complete(name: str):
    """A shell-completion callback of targets/complete.py, imported only when completing."""
    def callback(ctx, param, incomplete):
        from barebox_virtio_cli.targets import complete

        return getattr(complete, name)(ctx, param, incomplete)

    return callback


def _once(why: str):
    """A callback for an option given with multiple=True only to refuse it twice: the value,
    or None (click would otherwise drop all but the last without a word)."""
    def callback(ctx, param, values):
        if len(values) > 1:
            given = " ".join(f"{param.opts[-1]} {v}".rstrip() for v in values)
            raise click.UsageError(f"{param.opts[-1]} given {len(values)} times ({given}): "
                                   f"{why}; give it once", ctx)
        return values[0] if values else None

    return callback


def _apply(func, options):
    for option in reversed(options):
        func = option(func)
    return func


def device_options(func):
    """The virtio devices of a boot: `bbv run`, `bbv export` and `bbv test`."""
    return _apply(func, [
        click.option("--blk", multiple=True, metavar="FILE", help="Raw disk image (repeatable)."),
        click.option("--rng", count=True, help="Add a virtio RNG (repeat for more)."),
        click.option("--console", is_flag=False, flag_value="", default=None, metavar="[PATH]",
                     multiple=True, callback=_once("barebox has one virtio console (hvc0)"),
                     help="Virtio console on a unix socket (default path in the runtime dir)."),
        click.option("--input", "input", is_flag=True, help="Add a virtio keyboard."),
        click.option("--net", is_flag=True, help="Add a virtio NIC on QEMU user networking."),
        click.option("--port-forward", multiple=True, metavar="[tcp:|udp:]HOST[:GUEST]",
                     help="Forward a loopback port to the guest (with --net; repeatable)."),
        click.option("--fs", multiple=True, metavar="[TAG=]DIR",
                     help="Share DIR over 9p; barebox mounts it at /mnt/9p/TAG (repeatable)."),
        click.option("--env", multiple=True, metavar="PATH=VALUE|PATH=@FILE",
                     help="Put a file into barebox's environment over fw_cfg (repeatable)."),
    ])


def run_options(func):
    """The machine and device options shared by every command that boots one target."""
    return _apply(func, [
        click.option("-t", "--target", help="Target name from 'bbv targets'.",
                     shell_complete=_complete("target_names")),
        click.option("-a", "--arch", help="Pick the default target of an arch (arm, mips, ...).",
                     shell_complete=_complete("arch_names")),
        click.option("--image", metavar="PATH", help="barebox image (default: the last build)."),
        device_options,
        click.option("-m", "--memory", help="Guest memory, e.g. 512M."),
        click.option("--cpu", help="QEMU -cpu model."),
        click.option("--machine", help="QEMU -M machine (default from the target)."),
        click.option("--firmware", metavar="FILE",
                     help="Firmware for -bios (OVMF, OpenSBI) instead of the target's default."),
        click.option("--snapshot", is_flag=True, help="Do not write to the --blk images."),
        click.option("--graphic", is_flag=True, help="Open QEMU's display window."),
        click.option("--qemu-arg", multiple=True, metavar="ARG",
                     help="Pass ARG to QEMU as is (repeatable)."),
    ])


def check_options(func):
    """--exec, --expect, --timeout: a scripted boot's check (bbv run, bbv bisect)."""
    return _apply(func, [
        click.option("--exec", "exec", multiple=True, metavar="CMD",
                     help="Run CMD at the barebox prompt, then stop QEMU (repeatable)."),
        click.option("--expect", multiple=True, metavar="REGEX",
                     help="Must match the --exec output (the boot log without --exec)."),
        click.option("--timeout", type=Number.seconds(0, exclusive_min=True),
                     metavar="S",
                     help=f"Seconds for the boot and for each command [{DEFAULT_TIMEOUT:g}]."),
    ])


def booted_image_options(func):
    """bbv run's device and machine options without --image, for commands that boot the image
    they built (bbv bisect)."""
    func = run_options(func)
    func.__click_params__ = [p for p in func.__click_params__ if p.name != "image"]
    return func


def script_options(func):
    """--exec, --expect, --timeout, --junit, --json: `bbv run` as a scripted check."""
    return check_options(_apply(func, [
        click.option("--junit", metavar="FILE", help="Write the scripted run as JUnit XML."),
        click.option("--json", "json", is_flag=True,
                     help="Print the scripted run as JSON (output and timing of each step)."),
    ]))


def targets_options(func, each: str = "file"):
    """bbv run's options with -t repeatable (one `each` per target)."""
    func = run_options(func)
    for index, param in enumerate(func.__click_params__):
        if param.name == "target":
            func.__click_params__[index] = click.Option(
                ["-t", "--target", "targets"], multiple=True,
                shell_complete=_complete("target_names"),
                help=f"Target name from 'bbv targets' (repeatable: one {each} per target).")
    return func


def export_options(func):
    """bbv run's options with -t repeatable (one file per target), then -o and --force."""
    func = targets_options(func)
    return _apply(func, [
        click.option("-o", "--output", metavar="FILE|DIR/",
                     help="Where to write (default: standard output); a directory gets "
                          "TARGET.yaml for each target."),
        click.option("--force", is_flag=True, help="Replace existing files."),
    ])


class Number(click.ParamType):
    """An int or float option with a range, whose error reads as a sentence:
    "-j '0': give a whole number of at least 1" instead of click's "0 is not in the range x>=1"
    or "'x' is not a valid integer range"."""

    def __init__(self, kind: type = float, minimum: float | None = None,
                 exclusive_min: bool = False, maximum: float | None = None,
                 unit: str = "") -> None:
        self.kind, self.minimum, self.exclusive_min = kind, minimum, exclusive_min
        self.maximum, self.unit = maximum, unit
        self.name = "integer" if kind is int else "number"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                number = None
        if number is None or number != number or not self._in_range(number):
            self.fail(f"'{value}': give {self.describe()}", param, ctx)
        return number

    def _in_range(self, number) -> bool:
        if self.minimum is not None and (number < self.minimum or
                                         (self.exclusive_min and number == self.minimum)):
            return False
        return self.maximum is None or number <= self.maximum

    @classmethod
    def seconds(cls, minimum: float = 0, exclusive_min: bool = False) -> Number:
        """A duration option: at most SECONDS_MAX (a day)."""
        return cls(float, minimum, exclusive_min, maximum=SECONDS_MAX, unit="seconds")

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        unit = f" {self.unit}" if self.unit else ""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'more than' if self.exclusive_min else 'at least'} "
                         f"{self.minimum:g}{unit}")
        if self.maximum is not None:
            parts.append(f"at most {self.maximum:g}{unit}")
        if not parts:
            return f"{what}{unit and f' of{unit}'}"
        return f"{what} of {' and '.join(parts)}"
