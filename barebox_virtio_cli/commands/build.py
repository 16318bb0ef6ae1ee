"""bbv build: configure and build barebox out of tree, then record the result for `bbv run`."""

from __future__ import annotations

from pathlib import Path

import click

from barebox_virtio_cli.build import record as buildrecord


@click.command()
@click.argument("target", required=False)
@click.option("--src", type=click.Path(path_type=Path, file_okay=False),
              help="barebox source tree [default: current directory].")
@click.option("--arch", help="bbv arch name (arm64, mips, ...) or barebox ARCH.")
@click.option("--defconfig", help="Defconfig to build instead of the target's.")
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
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="make -j [default: CPU count].")
@click.option("-v", "--verbose", is_flag=True, help="Stream make's output as is.")
def build(target: str | None, **opts) -> None:
    """Build barebox for TARGET (a bbv target or a defconfig) in a barebox source tree.

    For a target, only the image it boots is made (with the barebox ELF for gdb)."""
    from barebox_virtio_cli.build.service import BuildRequest
    from barebox_virtio_cli.build.service import build as run_build

    opts["kconfig_add"] = tuple(opts["kconfig_add"])
    opts["all_images"] = opts["all_images"] or None  # not given: decided by what is named
    result = run_build(BuildRequest(target, **opts))
    _summary(result)


def _summary(result) -> None:
    from rich.console import Console

    console = Console(soft_wrap=True)
    image, out = result.image, result.build_dir
    if image is not None and image.is_file():
        console.print(f"[bold green]{image}[/]  {_size(image)}  (the target's image)")
    elif image is not None:
        console.print(f"[bold red]{image.name} was not built[/]: this defconfig does not "
                      "produce the target's image")
    others = [p for p in result.images if p != image]
    if result.scope == "target":
        stale = f"; the {_count(others)} also in images/ are older" if others else ""
        console.print(f"built only the target's image (--all-images builds every image of "
                      f"the defconfig{stale})")
    elif image is not None:
        if others:
            console.print(f"and {_count(others)} in {out / 'images'}")
    else:  # a defconfig no target boots: show what it made
        for p in others[:12]:
            console.print(f"{p}  {_size(p)}")
        if len(others) > 12:
            console.print(f"... and {len(others) - 12} more in {out / 'images'}")
    console.print(f"built in {result.seconds:.1f} s; recorded in "
                  f"{out / buildrecord.RECORD_NAME}")


def _count(others: list[Path]) -> str:
    return f"{len(others)} other image{'s' if len(others) != 1 else ''}"


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1024:.0f} KiB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MiB"
