"""bbv toolchain fetch ARCH: install a kernel.org crosstool GCC that `bbv build` then finds."""

from __future__ import annotations

import os
from pathlib import Path

import click

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.targets import complete
from barebox_virtio_cli.targets.catalog import Target, load_catalog
from barebox_virtio_cli.util.status import say


@click.group()
def toolchain() -> None:
    """Manage cross toolchains downloaded by bbv."""


@toolchain.command(short_help='Download a kernel.org "nolibc" GCC for ARCH.')
@click.argument("arch", shell_complete=complete.targets_and_arches)
@click.option("--version", "version", metavar="X.Y.Z",
              help="GCC version on the mirror [default: the one barebox's CI uses].")
@click.option("--mirror", metavar="URL",
              help="Base URL [default: $BBV_TOOLCHAIN_MIRROR, config [toolchain] mirror, "
                   "else kernel.org].")
@click.option("--force", is_flag=True, help="Download again even if installed.")
def fetch(arch: str, version: str | None, mirror: str | None, force: bool) -> None:
    """Download the kernel.org "nolibc" GCC for ARCH (an arch name or a bbv target)."""
    from barebox_virtio_cli.build import fetch as tf
    from barebox_virtio_cli.util import userconfig
    from barebox_virtio_cli.util.paths import data_dir
    from barebox_virtio_cli.util.validate import check_mirror_url

    catalog = load_catalog()
    target = catalog.targets.get(arch) or catalog.for_arch(arch)
    if not target.crosstool_triplet:
        raise UsageError(f"target '{target.name}' names no kernel.org toolchain "
                         "(crosstool_triplet); install a cross gcc yourself")
    version = tf.check_version(version or tf.DEFAULT_VERSION)
    base = check_mirror_url(mirror, "--mirror") if mirror is not None else \
        tf.mirror_url(os.environ, userconfig.table(userconfig.load(), "toolchain"))
    name = tf.install_name(version, target.crosstool_triplet)
    say(f"fetching {name} for {target.name} from {base}")
    with tf.DownloadBar(name) as update:
        prefix = tf.fetch(data_dir() / "toolchains", base, version, target.crosstool_triplet,
                          tf.host_dir(), update, force=force,
                          verify=lambda p: _verify(p, target))
    click.echo(f"installed {prefix} ({Path(prefix).parent.parent}); 'bbv build {target.name}' "
               "finds it with no flags")


def _verify(prefix: str, target: Target) -> None:
    from barebox_virtio_cli.build.toolchain import machine_matches, run_probe

    info = run_probe(Path(f"{prefix}gcc"))
    if info is None:
        raise BbvError(f"the downloaded {Path(prefix).name}gcc does not run on this host; "
                       "nothing was installed")
    if not machine_matches(info.machine, target.gcc_machine):
        raise BbvError(f"the downloaded compiler builds for {info.machine}, not for target "
                       f"'{target.name}'; nothing was installed")
