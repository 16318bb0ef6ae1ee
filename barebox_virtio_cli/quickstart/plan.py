"""Pure logic of `bbv quickstart`: which barebox release to download and how to verify it, the
steps, the checks typed at the barebox prompt and how their output is judged, and the commands
to go on with. Nothing here touches the network, processes or files (commands/quickstart.py)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util.validate import check_mirror_url

DOWNLOAD_URL = "https://www.barebox.org/download"  # barebox-<version>.tar.bz2, monthly releases
MIRROR_ENV = "BBV_BAREBOX_MIRROR"
# barebox.org publishes no checksum files; these are the sha256 sums distributions pin
# (OpenEmbedded's barebox recipes). A mirror may serve <tarball>.sha256 for other versions.
KNOWN_SHA256 = {
    "2025.08.0": "b32f141ee708e87cb0cc01d626adafc07bd6eb52d62ca969287d7d27462eab32",
    "2025.03.0": "0bf7118004e445bdd57feeef89ee9064982acc221e8a046c4a7994d3da6da2ec",
    "2024.09.0": "4d4ea7e232aeba2b3cb9ccf0dbf8cd8e01c65b6c615f64c3bd0c4f24f23a47da",
    "2024.08.0": "b08a762da8d63dd18b4f2d9f5d0a8da001b6e608d1b3eff6dcebc6a2e575d535",
}
DEFAULT_VERSION = "2025.08.0"  # the newest release whose checksum bbv knows
_VERSION = re.compile(r"^\d{4}\.\d{2}\.\d+$")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")

STEPS = ("check this machine", "get barebox", "find a toolchain", "build", "make disk images",
         "boot and check")
# Where each step's failure is usually fixed.
FIX = {
    "check this machine": "'bbv doctor {target}' lists what to install",
    "find a toolchain": "'bbv doctor {target}' shows the compilers it tried",
    "build": "'bbv doctor {target}' checks the host build tools",
    "make disk images": "'bbv doctor' checks mtools and dosfstools",
    "boot and check": "'bbv doctor {target}' checks QEMU",
}
MARKER = ".bbv-quickstart"  # marks a work directory as quickstart's own
FAT_IMAGE, RAW_IMAGE, FILE_NAME = "disk-fat.img", "disk-raw.img", "hello.txt"
DISK_SIZE = 8 << 20
# What quickstart writes into its work directory (which may be the source tree itself).
STATE_FILE = ".bbv-quickstart.json"  # the token and the FAT disk's stamp, for reruns
WORK_FILES = (MARKER, FAT_IMAGE, RAW_IMAGE, FILE_NAME, STATE_FILE)
RAW_CHECK = "virtio-blk: raw write"


def tarball_name(version: str) -> str:
    return f"barebox-{version}.tar.bz2"


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise UsageError(f"--version {version!r} is not a barebox release like "
                         f"{DEFAULT_VERSION} (YYYY.MM.N)")
    return version


def check_sha256(text: str) -> str:
    if not _HEX.match(text):
        raise UsageError(f"--sha256 {text!r} is not 64 hexadecimal digits")
    return text.lower()


def mirror_url(env: Mapping[str, str]) -> str:
    return check_mirror_url(env[MIRROR_ENV], f"${MIRROR_ENV}") if env.get(MIRROR_ENV) \
        else DOWNLOAD_URL


def pinned_sha256(version: str, given: str | None) -> str | None:
    """The checksum to trust before asking the server: --sha256, else bbv's own list."""
    return given or KNOWN_SHA256.get(version)


def fix_hint(step: str, target: str) -> str:
    hint = FIX.get(step, "")
    return f"; {hint.format(target=target)}" if hint else ""


def step_error(index: int, step: str, target: str, exc: BbvError) -> BbvError:
    """The error of a failed step: which step, why (the original message), how to fix it."""
    message = f"step {index + 1}/{len(STEPS)} ({step}) failed: {exc}{fix_hint(step, target)}"
    return type(exc)(message)


@dataclass(frozen=True)
class DeviceCheck:
    name: str  # the row of the table
    commands: tuple[str, ...]  # typed at the prompt, in order
    # the commands' output -> (ok, what was found or what is wrong)
    judge: Callable[[list[str]], tuple[bool, str]]


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str


def greeting(token: bytes) -> str:
    """The text of the file on the FAT disk; the token makes each run's file its own."""
    return f"hello from bbv quickstart {token.hex()}"


def checks(token: bytes, console: str) -> list[DeviceCheck]:
    """What shows each virtio device working. The FAT disk is the first --blk (virtioblk0:
    bbv keeps command-line order on every target); barebox automounts it at /mnt/virtioblk0.
    The session itself runs on the virtio console, which is that device's check."""
    pattern = " ".join(f"0x{b:02x}" for b in token)
    return [
        DeviceCheck("devices", ("ls /dev",),
              lambda out: _listed(out[0], ["virtioblk0", "virtioblk1", "hwrng0", console])),
        DeviceCheck("virtio-blk: FAT file", (f"cat /mnt/virtioblk0/{FILE_NAME}",),
              lambda out: (True, f"/mnt/virtioblk0/{FILE_NAME}: {greeting(token)}")
              if greeting(token) in out[0]
              else (False, f"{FILE_NAME} did not read back: {_last(out[0])}")),
        DeviceCheck(RAW_CHECK, (f"mw -b -d /dev/virtioblk1 0 {pattern}",
                          "md -b -s /dev/virtioblk1 0+4"),
              lambda out: (True, f"wrote and read back {token.hex(' ')}")
              if _md_bytes(out[1])[:4] == list(token)
              else (False, f"read back {_md_text(out[1])}, wrote {token.hex(' ')}")),
        DeviceCheck("virtio-rng", ("md -b -s /dev/hwrng0 0+32",), lambda out: _random(out[0])),
    ]


def _listed(output: str, names: list[str]) -> tuple[bool, str]:
    words = set(output.split())
    absent = [n for n in names if n not in words]
    return (False, f"/dev lacks {', '.join(absent)}") if absent else \
        (True, f"/dev/{', /dev/'.join(names)}")


def _last(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


_MD_LINE = re.compile(r"^[0-9a-f]{8}: ((?:[0-9a-f]{2}(?: +|$))+)", re.M)


def _md_bytes(output: str) -> list[int]:
    """The bytes of `md -b` output: 'OFFSET: 15 db 12 ...  ASCII', at most 16 a line (the
    ASCII column may itself look like hex)."""
    return [int(b, 16) for line in _MD_LINE.findall(output) for b in line.split()[:16]]


def _md_text(output: str) -> str:
    found = _md_bytes(output)
    return " ".join(f"{b:02x}" for b in found[:4]) if found else repr(_last(output))


def _random(output: str) -> tuple[bool, str]:
    found = _md_bytes(output)
    shown = " ".join(f"{b:02x}" for b in found[:8])
    if len(found) < 32:
        return False, f"read {len(found)} of 32 bytes from /dev/hwrng0: {_last(output)}"
    if len(set(found)) < 4:  # 32 random bytes with fewer than 4 distinct values: not random
        return False, f"/dev/hwrng0 gave {shown}..., not random"
    return True, f"32 bytes from /dev/hwrng0: {shown} ..."


def script_commands(items: list[DeviceCheck]) -> list[str]:
    return [command for check in items for command in check.commands]


def judge(items: list[DeviceCheck], outputs: list[tuple[str, int | None]]) -> list[Outcome]:
    """Each check's outcome from its commands' (output, exit status); a command that did not
    run (the session ended early) or failed fails its check."""
    outcomes, i = [], 0
    for check in items:
        mine = outputs[i:i + len(check.commands)]
        i += len(check.commands)
        problem = None
        for command, (output, status) in zip(check.commands, mine, strict=False):
            if status is None:
                problem = f"'{command}' did not run"
            elif status != 0:
                problem = f"'{command}' failed (exit status {status}): {_last(output)}"
            if problem:
                break
        if problem is None and len(mine) < len(check.commands):
            problem = "did not run"
        if problem is not None:
            outcomes.append(Outcome(check.name, False, problem))
        else:
            outcomes.append(Outcome(check.name, *check.judge([output for output, _ in mine])))
    return outcomes


def raw_on_host(outcomes: list[Outcome], head: bytes, token: bytes) -> list[Outcome]:
    """The raw-write check holds only if what barebox wrote reached the image file."""
    if head != token:
        return [Outcome(o.name, False, f"barebox read back what it wrote, but the image file "
                                       f"starts with {head.hex(' ')}")
                if o.name == RAW_CHECK and o.ok else o for o in outcomes]
    return [Outcome(o.name, o.ok, f"{o.detail}; in the image file too")
            if o.name == RAW_CHECK and o.ok else o for o in outcomes]


def go_on(target: str, image: Path, disks: list[Path], console: Path) -> list[str]:
    """The interactive commands for the same setup: boot in one terminal, console in another."""
    blks = " ".join(f"--blk {shlex.quote(str(d))}" for d in disks)
    return [f"bbv run --target {target} --image {shlex.quote(str(image))} {blks} --rng "
            f"--console {shlex.quote(str(console))}",
            f"bbv console {shlex.quote(str(console))}"]
