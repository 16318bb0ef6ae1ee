"""bbv build: the options, one BuildRequest, build.service to build it and show the result."""

from __future__ import annotations

from pathlib import Path

import click

from barebox_virtio_cli.commands._options import Number
from barebox_virtio_cli.targets import complete


@click.command()
@click.argument("target", required=False, shell_complete=complete.build_targets)
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree [default: current directory].")
@click.option("--arch", help="bbv arch name (arm64, mips, ...) or barebox ARCH.",
              shell_complete=complete.arch_names)
@click.option("--defconfig", help="Defconfig to build instead of the target's.",
              shell_complete=complete.defconfigs)
@click.option("-O", "--build-dir", type=click.Path(path_type=Path, dir_okay=True),
              help="Output directory [default: $KBUILD_OUTPUT, else SRC/build-TARGET].")
@click.option("--clean", is_flag=True, help="Empty the build directory first.")
@click.option("--kconfig-add", "kconfig_add", multiple=True, metavar="FILE|CONFIG_X=y",
              help="Config fragment or single option merged after the defconfig (repeatable).")
@click.option("--target-tools", is_flag=True,
              help="Keep the target tools (bareboxenv-target, ...): they need a libc for the "
                   "target, which nolibc and most cross compilers lack.")
@click.option("--cross-compile", help="Compiler prefix, e.g. arm-linux-gnueabihf-.")
@click.option("--all-images", is_flag=True, default=None,
              help="Build every image the defconfig makes, not only the target's "
                   "[default when a defconfig rather than a target is named].")
@click.option("--no-ccache", is_flag=True,
              help="Do not compile through ccache (used when installed; also "
                   "`[build] ccache = false` in the config file).")
@click.option("-j", "--jobs", type=Number(int, 1, maximum=4096),
              help="make -j [default: CPU count].")
@click.option("-v", "--verbose", is_flag=True, help="Stream make's output as is.")
def build(**options) -> None:
    """Build barebox for TARGET (a bbv target or a defconfig) in a barebox source tree.

    For a target, only the image it boots is made (with the barebox ELF for gdb)."""
    from barebox_virtio_cli.build.service import BuildRequest, build, print_summary
    from barebox_virtio_cli.util.validate import check_not_empty

    for name in ("cross_compile", "defconfig", "arch"):
        check_not_empty(f"--{name.replace('_', '-')}", [options[name]], "a value")
    options["kconfig_add"] = tuple(options["kconfig_add"])
    options["all_images"] = options["all_images"] or None  # not given: decided by what is named
    print_summary(build(BuildRequest(**options)))
