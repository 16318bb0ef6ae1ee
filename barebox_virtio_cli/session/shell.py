"""Pure logic for talking to barebox's shell over a console: the patterns bbv waits for (the
one place barebox's prompt, autoboot line and ANSI escapes are spelt), the key that stops
autoboot, the line typed for a command and the text cut from what came back."""

from __future__ import annotations

import re

# PS1 is "barebox@\h:\w " (defaultenv-2 init/ps1), coloured with ANSI escapes by default;
# \h is the model and may hold spaces ("barebox@ARM QEMU virt:/ ").
PROMPT = r"barebox@[^\r\n]*:\S* "
# The prompt as barebox's own labgrid environments (test/*/*.yaml) spell it, for the labgrid
# and LAVA files `bbv export` writes: those tools strip the colours themselves.
LABGRID_PROMPT = "barebox@[^:]+:[^ ]+ "
# common/startup.c: "Hit %s%s to stop autoboot: " with "m for menu or " and the abort key name.
AUTOBOOT = r"Hit (?:m for menu or )?(\S+) to stop autoboot"
# common/console_common.c, log_print() with BAREBOX_LOG_PRINT_TIME: "[%10luus] message".
LOG_TIMESTAMP = re.compile(r"^\[\s*(\d+)us\] (.*\S)", re.MULTILINE)
# What bbv types after a --deterministic boot to read barebox's log with its timestamps.
DMESG = "dmesg -t"
MARKER = "bbv-rc-"
NONCE_LENGTH = 8
# barebox reads a line into CONFIG_CBSIZE bytes (1024 by default) and cuts what does not fit,
# keeping room for the end of the line: 1022 characters came through, 1023 did not.
LINE_MAX = 1022

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-2]")
_BACKSPACED = re.compile(r"[^\n\x08]\x08")


def abort_key(name: str) -> str:
    """What to type for the key named in the autoboot line ("any", "ctrl-c" or one character)."""
    if name in ("any", "ctrl-c") or len(name) != 1:
        return "\x03"  # Ctrl-C stops the countdown in both "any" and "ctrl-c" modes
    return name


def check_command(command: str) -> str | None:
    """Why a --exec command cannot be sent as one shell line, or None if it can."""
    if not command.strip():
        return "is empty"
    if "\n" in command or "\r" in command:
        return "has a line break; give each line its own --exec"
    if any(ord(c) < 32 and c != "\t" for c in command):
        return "has a control character, which the console would take as a key"
    room = LINE_MAX - len(command_line("", "0" * NONCE_LENGTH))
    if len(command.strip()) > room:
        return (f"is {len(command.strip())} characters; barebox reads {LINE_MAX} per line and bbv "
                f"adds its status check, so at most {room}: split it into several --exec")
    return _swallows_marker(command)


def shorten(command: str, width: int = 60) -> str:
    """A command as messages quote it."""
    return command if len(command) <= width else command[:width - 3] + "..."


def _swallows_marker(command: str) -> str | None:
    """What would keep hush from running the '; echo MARKER=$?' bbv appends (command_line), so
    that bbv would wait in vain. Follows parse_stream() in barebox's common/hush.c, which
    differs from POSIX: a ' opens a quote even inside "...", and a lone & or | is an error."""
    in_double, word_start, i = False, True, 0
    while i < len(command):
        char = command[i]
        if in_double and char not in "\\$'\"":
            word_start = False
        elif char in " \t":
            word_start = True
        elif char == "#" and word_start:
            return "has a '#' comment; leave it out (bbv appends its status check to the line)"
        elif char == "\\":
            if i + 1 == len(command):
                return "ends in a backslash, which would continue the line"
            i, word_start = i + 1, False
        elif char == "'":
            end = command.find("'", i + 1)
            if end < 0:
                return "has an unclosed ' quote (in barebox's shell also inside \"...\")"
            i, word_start = end, False
        elif char == '"':
            in_double, word_start = not in_double, False
        elif char in "&|":
            if command[i + 1:i + 2] != char:
                return f"has a single '{char}', which barebox's shell rejects as a syntax error"
            i, word_start = i + 1, True
        else:
            word_start = char == ";"
        i += 1
    return 'has an unclosed " quote' if in_double else None


def command_line(command: str, nonce: str) -> str:
    """The line typed at the prompt: the command, then its exit status behind a marker.

    Both go on one line because barebox reads typed-ahead input while a command runs (ctrlc()
    polls the console), so a second line sent early could be eaten."""
    return f"{command.strip().rstrip(';')}; echo {MARKER}{nonce}=$?"


def status_pattern(nonce: str) -> str:
    """Matches the marker barebox prints, not the typed line, which holds '$?' instead of digits."""
    return rf"{MARKER}{nonce}=(\d+)\r*\n"  # QEMU stdio turns \r\n into \r\r\n


def statuses(text: str, nonce: str) -> list[int]:
    """The exit statuses barebox printed behind this session's markers, in order."""
    return [int(found) for found in re.findall(status_pattern(nonce), text)]


def clean(text: str) -> str:
    """Console bytes as plain text: no colours, Unix line ends, countdown backspaces applied."""
    text = ANSI.sub("", text).replace("\r\n", "\n")
    while "\x08" in text:
        text, count = _BACKSPACED.subn("", text)
        if not count:
            text = text.replace("\x08", "")
    return text.replace("\r", "")


def command_output(raw: str) -> str:
    """A command's output from what came back before the status marker: the first line is the
    echo of the typed line and goes, so does the newline the marker line began with."""
    text = clean(raw)
    _, _, output = text.partition("\n")
    return output.removesuffix("\n")


def last_boot_message(dmesg: str, boot_log: str) -> tuple[int, str] | None:
    """The timestamp (us) and text of barebox's last log message that the console showed
    before bbv pressed a key or, without a countdown, before the prompt: the messages of
    `dmesg -t` found in that order in the boot log. What comes after the key (the network
    opened, a message of the countdown) is logged whenever bbv typed, so it does not count."""
    countdown = re.search(AUTOBOOT, boot_log)
    before_key = boot_log[:countdown.start()] if countdown else boot_log
    last, position = None, 0
    for found in LOG_TIMESTAMP.finditer(clean(dmesg)):
        at = before_key.find(found[2], position)
        if at >= 0:
            last, position = (int(found[1]), found[2]), at + len(found[2])
    return last


def last_lines(text: str, count: int = 15) -> list[str]:
    return [line for line in clean(text).split("\n") if line.strip()][-count:]


class Activator:
    """The same steps as scripted.activate (stop autoboot, wait for the prompt, type the command
    that activates another console), fed piecewise by a relay that must keep reading its
    stream (console/serial.py): each feed returns what to type now."""

    _AT_PROMPT = re.compile(PROMPT + "$")
    _AUTOBOOT = re.compile(AUTOBOOT)

    def __init__(self, command: str):
        self.command = command
        self.state = "boot"  # boot -> key sent -> command sent -> done
        self.tail = ""

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, text: str) -> bytes:
        self.tail = (self.tail + ANSI.sub("", text.replace("\r", "")))[-4096:]
        at_prompt = self._AT_PROMPT.search(self.tail) is not None
        countdown = self._AUTOBOOT.search(self.tail)
        if self.state == "boot" and countdown:
            return self._next("key", abort_key(countdown.group(1)).encode())
        if self.state == "boot" and at_prompt:  # no countdown (autoboot off): type at once
            return self._next("command", f"{self.command}\n".encode())
        if self.state == "key" and at_prompt:
            return self._next("command", f"{self.command}\n".encode())
        if self.state == "command" and at_prompt:
            return self._next("done", b"")
        return b""

    def _next(self, state: str, send: bytes) -> bytes:
        self.state, self.tail = state, ""
        return send
