"""Runs inside gdb (`gdb -x gdbhelper.py`, started by `bbv gdb`): finds where barebox and
its PBL run and loads their symbols there. Configured by $BBV_GDB_HELPER (JSON: pythonpath,
barebox, pbl, image, offset). Defines `bbv-symbols` to look again; also looks on every stop
until both are loaded, and catches the PBL handing over to barebox proper, so symbols appear
once barebox has relocated itself (e.g. after `--gdb-wait`)."""

import json
import os
import sys

import gdb  # noqa: F401 - provided by gdb's embedded Python

CONFIG = json.loads(os.environ["BBV_GDB_HELPER"])
sys.path.insert(0, CONFIG["pythonpath"])

from barebox_virtio_cli.debug.elf import read_elf  # noqa: E402
from barebox_virtio_cli.debug.reloc import load_candidates, locate  # noqa: E402

WINDOW = 256
FILES = [("barebox", CONFIG["barebox"])] + ([("PBL", CONFIG["pbl"])] if CONFIG.get("pbl") else [])
HEAD = (64, 32)  # (offset, length) of the image bytes compared to find where it was loaded;
# not its first bytes, which a machine may patch (QEMU's malta writes a board ID at 0x10)
loaded = {}  # path -> offset
_elves = {}
_handover = []  # the one _Handover breakpoint, once set


def _say(text):
    gdb.write(f"bbv: {text}\n")


def _quote(path):
    return "".join("\\" + c if c in " \t'\"\\" else c for c in path)


def _window(pc):
    inferior = gdb.selected_inferior()
    for start, size in ((pc - WINDOW // 2, WINDOW), (pc, WINDOW // 2)):
        start &= ~3
        try:
            return start, bytes(inferior.read_memory(start, size))
        except (gdb.MemoryError, OverflowError):
            continue
    return None, b""


def _address_mask():
    return (1 << 8 * gdb.lookup_type("void").pointer().sizeof) - 1


def _elf(path):
    if path not in _elves:
        _elves[path] = read_elf(path)
    return _elves[path]


def find_and_load(quiet=False):
    """Load every symbol file whose code the CPU is running; True if one was loaded."""
    try:
        pc = int(gdb.parse_and_eval("$pc")) & ~1 & _address_mask()  # MIPS sign-extends
    except gdb.error:
        return False
    start, window = _window(pc)
    found = False
    for kind, path in FILES:
        if path in loaded:
            continue
        match = locate(pc, window, start, _elf(path).code) if window else None
        if match is not None:
            _load(kind, path, match.offset, f"PC {pc:#x} in its {match.section}")
            found = True
        elif kind == "PBL" and window:
            image_at = _image_address(window, pc)
            if image_at is not None:
                offset = image_at - min(section.addr for section in _elf(path).code)
                _load(kind, path, offset, f"the image is loaded at {image_at:#x}, not started")
                found = True
    missing = [kind for kind, path in FILES if path not in loaded]
    if missing and not found and not quiet:
        where = " nor ".join(missing)
        _say(f"PC {pc:#x} is in {'neither ' if len(missing) > 1 else 'no '}{where} code (not "
             "started yet, or in firmware); symbols load when gdb stops inside barebox, or "
             "type bbv-symbols")
    return found


def _load(kind, path, offset, why):
    gdb.execute(f"add-symbol-file {_quote(path)} -o {offset:#x}", from_tty=False,
                to_string=True)
    loaded[path] = offset
    _say(f"{kind} runs at offset {offset:#x} ({why}); symbols loaded from {path}")
    if kind == "PBL":
        _watch_handover()


def _image_address(window, pc):
    """Where the image is in memory when the CPU has not reached it yet (it starts with the
    PBL, linked at its lowest code address): its bytes at one of the load candidates."""
    image = CONFIG.get("image")
    if not image:
        return None
    with open(image, "rb") as fh:
        fh.seek(HEAD[0])
        head = fh.read(HEAD[1])
    inferior = gdb.selected_inferior()
    little = _elf(CONFIG["pbl"]).little_endian
    for addr in load_candidates(window, pc, little):
        try:
            if bytes(inferior.read_memory(addr + HEAD[0], len(head))) == head:
                return addr
        except (gdb.MemoryError, OverflowError):
            continue
    return None


HANDOVER = "elf_load_inplace"  # the PBL calls it with barebox proper's ELF where it will run


class _Handover(gdb.Breakpoint):
    """Where the PBL (barebox since v2026.06) has put barebox proper's ELF image where it will
    run, before relocating it: the image starts at `elf->hdr_buf`, so barebox's offset is
    that address plus the file offset minus the link address of its first segment. Loads the
    symbols and never stops, so breakpoints set early (`break do_version` with --gdb-wait)
    are in place when barebox proper runs."""

    def __init__(self):
        super().__init__(HANDOVER, internal=True)
        self.silent = True

    def stop(self):
        path = CONFIG["barebox"]
        if path not in loaded:
            try:
                buf = int(gdb.parse_and_eval("elf->hdr_buf"))
            except gdb.error:
                return False
            _load("barebox", path, buf + _elf(path).load_delta,
                  f"the PBL put its ELF at {buf:#x}")
        return False


def _watch_handover():
    """With the PBL loaded and barebox proper not yet, catch the PBL handing over."""
    if CONFIG.get("pbl") not in loaded or CONFIG["barebox"] in loaded or _handover:
        return
    if gdb.lookup_global_symbol(HANDOVER) is not None:
        _handover.append(_Handover())


def _on_stop(_event):
    if len(loaded) < len(FILES):
        find_and_load(quiet=True)


class BbvSymbols(gdb.Command):
    """Find where barebox and its PBL run (from the code at the PC) and load their symbols."""

    def __init__(self):
        super().__init__("bbv-symbols", gdb.COMMAND_FILES)

    def invoke(self, argument, from_tty):
        for path in list(loaded):  # barebox may have been restarted and run elsewhere now
            gdb.execute(f"remove-symbol-file {_quote(path)}", from_tty=False, to_string=True)
            del loaded[path]
        find_and_load()


BbvSymbols()
gdb.events.stop.connect(_on_stop)
if CONFIG.get("offset") is not None:
    _load("barebox", CONFIG["barebox"], CONFIG["offset"], "from iomem")
if find_and_load() and gdb.selected_frame().name():
    gdb.execute("frame")  # where the CPU is, now with a function name and source line
if CONFIG["barebox"] not in loaded:
    gdb.execute("set breakpoint pending on", to_string=True)  # `break do_version` waits for it
