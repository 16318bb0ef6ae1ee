"""Checks of command-line values that every command shares: URLs, sizes, numbers and QEMU
words, each failing with one UsageError line (exit 2) that says what was wrong and what to give.
Light at import: no click, no requests, no rich (commands/_options.Number is the click type
that uses them)."""

from __future__ import annotations

import os
import re

from barebox_virtio_cli.errors import UsageError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# The longest wait an option takes: select() and pexpect overflow on inf or 1e10 seconds.
SECONDS_MAX = 86400.0
MEMORY_MAX = 1 << 40  # more than any QEMU machine bbv boots takes (ARM virt: 255 GiB)
_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)


def check_mirror_url(url: str, where: str) -> str:
    """An http(s) base URL with a host, without its trailing '/'; `where` names its source
    ('--mirror', '$BBV_TOOLCHAIN_MIRROR', ...) in the error."""
    problem = url_problem(url)
    if problem:
        raise UsageError(f"{where} '{url}' {problem}; give an http:// or https:// URL such as "
                         "https://mirror.example.org/path")
    return url.strip().rstrip("/")


def url_problem(url: str) -> str | None:
    """What makes url unusable for a download, checked here rather than left to requests,
    whose answer to the same URL differs between versions (a name lookup or an InvalidURL)."""
    text = url.strip()
    if not text:
        return "is empty"
    if any(c.isspace() or ord(c) < 32 for c in text):
        return "contains spaces or control characters"
    from urllib.parse import urlsplit  # only for URLs: not on `bbv run`'s start-up path

    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed [IPv6 bracket
        return "is not a valid URL"
    if not parts.scheme or "://" not in text:
        return "has no scheme"
    if parts.scheme.lower() not in ("http", "https"):
        return f"uses {parts.scheme}://, which bbv cannot download from"
    try:
        port = parts.port
    except ValueError:
        return "has an invalid port"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has an invalid port"
    return None


def parse_memory(text: str) -> str:
    """QEMU's -m value (a number with an optional K/M/G/T suffix, MiB without one), checked
    and normalised: '512m' -> '512M', '1.5G' -> '1536M'."""
    match = _MEMORY.fullmatch(text)
    if not match:
        raise UsageError(f"--memory '{text}' is not a size like 512M or 2G")
    unit = match[2].upper() or "M"
    size = float(match[1]) * _UNITS[unit]
    if size < 1 << 20:
        raise UsageError(f"--memory '{text}' is less than 1 MiB; give a size like 512M")
    if size > MEMORY_MAX:
        raise UsageError(f"--memory '{text}' is more than {MEMORY_MAX >> 40} TiB; "
                         "give a size like 512M")
    if size % (1 << 20):
        raise UsageError(f"--memory '{text}' is not a whole number of MiB")
    mib = int(size) >> 20
    return f"{mib >> 10}G" if mib % 1024 == 0 else f"{mib}M"


def check_not_empty(option: str, values, what: str = "a path") -> None:
    """A path option given as '' would become '.', the current directory."""
    for value in values:
        if value is not None and not str(value).strip():
            raise UsageError(f"{option} '{value}' is empty; give {what}")


def check_word(text: str, option: str) -> str:
    """A QEMU -cpu or -M value: one word (options after commas are QEMU's business)."""
    if not text.strip() or any(c.isspace() for c in text) or text.startswith("-"):
        raise UsageError(f"{option} '{text}' is not a QEMU {option.lstrip('-')} name; "
                         f"'{option} help' lists them in QEMU")
    return text


def check_machine(machine: str, known: dict[str, str], qemu: str) -> str:
    """--machine against the machines the QEMU binary reports (its QMP probe)."""
    check_word(machine, "--machine")
    name = machine.split(",", 1)[0]
    if known and name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--machine '{name}': {os.path.basename(qemu)} has no such machine"
                         f"{hint}; '{qemu} -M help' lists them")
    return machine


def check_cpu(cpu: str, known: list[str], qemu: str) -> str:
    """--cpu against the models the QEMU binary reports; 'host' and 'max' are always let
    through (host depends on KVM, which the probe does not start)."""
    check_word(cpu, "--cpu")
    name = cpu.split(",", 1)[0]
    if known and name not in {*known, "host", "max"}:  # QEMU's names are case-sensitive
        import difflib

        by_lower = {k.lower(): k for k in known}
        close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, n=3)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--cpu '{name}': {os.path.basename(qemu)} has no such CPU model"
                         f"{hint}; '{qemu} -cpu help' lists them")
    return cpu


def human_size(size: int) -> str:
    for unit, shift in (("EiB", 60), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g} {unit}"
    return f"{size} bytes"
