"""What ties `bbv run --gdb` to `bbv gdb`: the stub's endpoint, recorded per target in the
runtime dir while the run lasts, the attach command printed for the user, and the choice of
endpoint, image, symbols and gdb for `bbv gdb`."""

from __future__ import annotations

import atexit
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.build.record import find_image, read_record
from barebox_virtio_cli.debug import endpoint as endpoints
from barebox_virtio_cli.debug.elf import ElfError, read_elf
from barebox_virtio_cli.debug.gdbrun import arch_commands, find_gdb
from barebox_virtio_cli.debug.reloc import offset_from_iomem
from barebox_virtio_cli.debug.symbols import Symbols, find_symbols
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.run.inputs import existing_file
from barebox_virtio_cli.targets.catalog import Target
from barebox_virtio_cli.util.jsonfile import read_object, write_json
from barebox_virtio_cli.util.paths import runtime_dir
from barebox_virtio_cli.util.processes import pid_alive
from barebox_virtio_cli.util.sockets import Endpoint
from barebox_virtio_cli.util.status import say


def stub_for_run(value: str | None, wait: bool) -> Endpoint | None:
    """`--gdb [ENDPOINT]` (value "" when bare); `--gdb-wait` alone implies a bare --gdb."""
    if value is None and not wait:
        return None
    return endpoints.for_qemu(value)


def attach_command(target: Target, image: Path, stub: Endpoint) -> str:
    argv = ["bbv", "gdb", "--target", target.name, "--image", str(image), str(stub)]
    return " ".join(shlex.quote(a) for a in argv)


def _record_file(target_name: str) -> Path:
    return runtime_dir() / f"{target_name}.gdb.json"


def record_stub(target: Target, image: Path, stub: Endpoint) -> None:
    """Lets a plain `bbv gdb -t TARGET` find this run's stub; removed when bbv exits."""
    path = _record_file(target.name)
    write_json(path, {"endpoint": str(stub), "image": str(image), "pid": os.getpid()})
    atexit.register(_remove_record, path, os.getpid())


def _remove_record(path: Path, pid: int) -> None:
    record = read_object(path)
    if record is not None and record.get("pid") == pid:
        path.unlink(missing_ok=True)


def running_stub(target_name: str) -> dict | None:
    record = read_object(_record_file(target_name))
    if record is None or not _alive(record.get("pid")):
        return None
    return record


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False

    return pid_alive(pid)


@dataclass
class Attach:
    endpoint: Endpoint
    image: Path | None
    symbols: Symbols
    gdb: str
    setup: list[str]  # gdb commands before connecting
    offset: int | None  # barebox's offset, when given by iomem output


def plan_attach(target: Target, endpoint_text: str | None, image: str | None,
                build_dir: str | None, iomem: tuple[str, str] | None = None) -> Attach:
    """Everything `bbv gdb` decides before gdb starts; `iomem` is (its name, its text)."""
    # The paths given come first: a typo there is the one thing to report, not the endpoint.
    given = existing_file(Path(image), "--image") if image else None
    if build_dir and not Path(build_dir).is_dir():
        raise UsageError(f"--build-dir {build_dir}: no such directory")
    record = running_stub(target.name)
    if endpoint_text:
        stub = endpoints.parse(endpoint_text)
    elif record is not None:
        stub = endpoints.parse(record["endpoint"])
    else:
        raise UsageError(f"no ENDPOINT given and no 'bbv run --gdb' of target '{target.name}' "
                         "is running; start one, or pass the endpoint it printed")
    same_run = record is not None and \
        endpoints.gdb_remote(endpoints.parse(record["endpoint"])) == endpoints.gdb_remote(stub)
    image_path = given or _image(target, build_dir, record if same_run else None)
    symbols = find_symbols(image_path, Path(build_dir) if build_dir else None, target.name)
    try:
        elf = read_elf(symbols.barebox)
    except (OSError, ElfError) as exc:
        raise BbvError(f"cannot read {symbols.barebox}: {exc}") from None
    offset = None if iomem is None else _iomem_offset(*iomem, elf)
    gdb = find_gdb(_prefixes(target, symbols), target.arch)
    endpoints.check_listening(stub)  # last: everything else is the user's to fix first
    return Attach(stub, image_path, symbols, gdb, arch_commands(elf), offset)


def _iomem_offset(name: str, text: str, elf) -> int:
    offset = offset_from_iomem(text, min((s.addr for s in elf.code), default=0))
    if offset is None:
        raise UsageError(f"--iomem {name}: no 'barebox code' line; give the output of "
                         "barebox's iomem command")
    return offset


def _image(target: Target, build_dir: str | None, record: dict | None) -> Path | None:
    if build_dir:
        path = Path(build_dir) / "images" / target.image
        return path.resolve() if path.is_file() else None
    if record is not None and record.get("image"):
        return Path(record["image"])

    found, looked = find_image(target.name, target.image, Path.cwd())
    if found is None:
        raise BbvError(f"no {target.image} for target '{target.name}' to take symbols from "
                       f"(looked at {', '.join(map(str, looked))}); build it with "
                       f"'bbv build {target.name}', or pass --image IMG or --build-dir DIR")
    return found.resolve()


def _prefixes(target: Target, symbols: Symbols) -> list[str]:
    record = read_record(symbols.build_dir)
    built_with = record.toolchain.split()[-1:] if record else []  # no "ccache " in front
    return [*built_with, *target.toolchain_prefixes]


def announce_stub(target: Target, image: Path, stub: Endpoint, wait: bool) -> None:
    record_stub(target, image, stub)
    halted = "; the CPU waits for gdb's 'continue'" if wait else ""
    say(f"gdb stub on {stub}{halted}; attach: {attach_command(target, image, stub)}")
