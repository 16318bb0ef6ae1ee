"""Shell completion of target names, arches and defconfigs (click's shell_complete callbacks).
The catalog and the tree are read only inside the callbacks, when the shell asks; nothing
here costs start-up (callbacks return plain strings, so click.shell_completion is not
imported either)."""

from __future__ import annotations

from pathlib import Path

from barebox_virtio_cli.build import kbuild
from barebox_virtio_cli.targets.catalog import load_catalog


def _catalog():
    try:
        return load_catalog()
    except Exception:  # a broken user target file must not break the shell
        return None


def _items(words, incomplete: str) -> list[str]:
    return [w for w in dict.fromkeys(words) if w.startswith(incomplete)]


def target_names(ctx, param, incomplete: str) -> list[str]:
    catalog = _catalog()
    return _items(catalog.names() if catalog else [], incomplete)


def arch_names(ctx, param, incomplete: str) -> list[str]:
    catalog = _catalog()
    if catalog is None:
        return []
    return _items(sorted({a for t in catalog.targets.values() for a in t.arch_names}),
                  incomplete)


def targets_and_arches(ctx, param, incomplete: str) -> list[str]:
    """`bbv toolchain fetch ARCH` takes either."""
    return _items([*target_names(ctx, param, incomplete), *arch_names(ctx, param, incomplete)],
                  incomplete)


def defconfigs(ctx, param, incomplete: str) -> list[str]:
    """The defconfigs of the tree (--src, else the current directory); without a tree, those
    the catalog's targets name."""
    src = Path(ctx.params.get("src") or ".")
    names = sorted(kbuild.defconfigs(src)) if (src / "arch").is_dir() else []
    if not names:
        catalog = _catalog()
        names = sorted({d for t in catalog.targets.values() for d in t.defconfigs}) \
            if catalog else []
    return _items(names, incomplete)


def build_targets(ctx, param, incomplete: str) -> list[str]:
    """`bbv build TARGET`: a catalog target or a defconfig of the tree."""
    return target_names(ctx, param, incomplete) + defconfigs(ctx, param, incomplete)
