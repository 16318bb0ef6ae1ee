"""The miniature barebox tree (tests/fixtures/minibarebox) as `bbv test` and `bbv test --ci`
use it in the tests: a copy whose image is the tiny guest (tests/tinyguest), which QEMU boots."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "minibarebox"
TINYGUEST = ROOT / "tests" / "tinyguest" / "tinyguest.s"
TINY_RULE = """
# bbv test tests: the image is the tiny guest (tests/tinyguest), which QEMU boots.
$(objtree)/images/$(image): $(srctree)/tinyguest.s
\t@mkdir -p $(dir $@)
\t@$(CROSS_COMPILE)as -o $(objtree)/tinyguest.o $<
\t@$(CROSS_COMPILE)ld -Ttext=0x40010000 -o $(objtree)/tinyguest.elf $(objtree)/tinyguest.o
\t@$(CROSS_COMPILE)objcopy -O binary $(objtree)/tinyguest.elf $@
"""
TINY_TESTS = 10  # tests/fixtures/minibarebox/test/py/test_tiny.py


def make_tree(base: Path, devel_config: str | None = None) -> Path:
    tree = base / "barebox"
    shutil.copytree(FIXTURE, tree)
    shutil.copy(TINYGUEST, tree / "tinyguest.s")
    with (tree / "Makefile").open("a") as fh:
        fh.write(TINY_RULE)
    if devel_config is not None:
        (tree / "common" / "boards" / "configs" / "devel.config").write_text(devel_config)
    return tree


def leftovers(tree: Path) -> list[str]:
    """pytest or QEMU processes still running for this tree."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(tree) in argv and ("qemu-system" in argv or "pytest" in argv):
            found.append(f"{proc.name}: {argv}")
    return found
