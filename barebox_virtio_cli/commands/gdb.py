"""bbv gdb: attach gdb to a QEMU gdb stub with barebox's symbols where barebox runs."""

from __future__ import annotations

import sys

import click

from barebox_virtio_cli.util.status import say


class _SplitAtDashes(click.Command):
    """Everything after `--` goes to gdb untouched (click would take the first as ENDPOINT)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["gdb_args"], args = args[cut + 1:], args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- GDB-ARGS...]"]


@click.command(cls=_SplitAtDashes)
@click.option("-t", "--target", help="Target name from 'bbv targets'.")
@click.option("-a", "--arch", help="Pick the default target of an arch (arm, mips, ...).")
@click.option("--image", metavar="IMG", help="The image QEMU runs; symbols come from its build.")
@click.option("--build-dir", metavar="DIR",
              help="The barebox build directory to take symbols from.")
@click.option("--iomem", type=click.File("r"), metavar="FILE",
              help="barebox's 'iomem' output ('-': stdin): take barebox's offset from its "
              "'barebox code' line instead of finding it.")
@click.argument("endpoint", required=False)
@click.pass_context
def gdb(ctx: click.Context, target: str | None, arch: str | None, image: str | None,
        build_dir: str | None, iomem, endpoint: str | None) -> None:
    """Run gdb attached to QEMU's gdb stub, with barebox's symbols loaded where it runs.

    ENDPOINT is what 'bbv run --gdb' printed (tcp:HOST:PORT, tcp::PORT, unix:PATH, PORT);
    without it, the stub of the target's running 'bbv run --gdb'. Arguments after '--' go
    to gdb as they are.

    \b
    Examples:
      bbv run -t vexpress --gdb            # prints the bbv gdb command
      bbv gdb -t vexpress
      bbv gdb -t vexpress -- -batch -ex 'break do_version' -ex continue -ex bt
    """
    if image and build_dir:
        raise click.UsageError("give --image or --build-dir, not both")
    from barebox_virtio_cli.debug.gdbrun import gdb_argv, helper_env, run_gdb
    from barebox_virtio_cli.debug.session import plan_attach
    from barebox_virtio_cli.targets.catalog import load_catalog

    iomem_text = None if iomem is None else (iomem.name, iomem.read())
    plan = plan_attach(load_catalog().resolve(target, arch), endpoint, image, build_dir,
                       iomem_text)
    pbl = f" and {plan.symbols.pbl.name}" if plan.symbols.pbl else ""
    say(f"gdb on {plan.endpoint}; symbols: {plan.symbols.barebox}{pbl}")
    argv = gdb_argv(plan.gdb, plan.endpoint, list(ctx.meta.get("gdb_args", [])), plan.setup)
    sys.exit(run_gdb(argv, helper_env(plan.symbols, plan.image, plan.offset)))
