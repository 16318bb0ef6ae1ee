"""Pure logic of scripted boots: the shell protocol, expectations and the JSON/JUnit renderings."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.session import shell as sh
from barebox_virtio_cli.session.report import (
    FAILED,
    PASSED,
    SKIPPED,
    TIMEOUT,
    ScriptResult,
    Step,
    check_expectations,
    compile_patterns,
    summary,
    to_json,
    to_junit,
)

pytestmark = pytest.mark.pure

COLOUR_PROMPT = "\x1b[1;32mbarebox@\x1b[1;36mARM QEMU virt:/\x1b[0m "


@pytest.mark.parametrize("prompt", [COLOUR_PROMPT, "barebox@virt:/mnt/disk0 ",
                                    "\x1b[1;32mbarebox@\x1b[1;36mbbv-tiny:/\x1b[0m "])
def test_prompt_pattern_matches_barebox_prompts(prompt):
    assert re.search(sh.PROMPT, "version\r\n" + prompt)


@pytest.mark.parametrize("line, key", [
    ("Hit m for menu or any to stop autoboot:    3", "\x03"),
    ("Hit any to stop autoboot:    3", "\x03"),
    ("Hit ctrl-c to stop autoboot:    1", "\x03"),
    ("Hit x to stop autoboot:    3", "x"),
])
def test_autoboot_line_gives_the_abort_key(line, key):
    assert sh.abort_key(re.search(sh.AUTOBOOT, line).group(1)) == key


def test_status_marker_matches_barebox_answer_not_the_typed_line():
    line = sh.command_line("ls /dev;", "cafe")
    assert line == "ls /dev; echo bbv-rc-cafe=$?"
    pattern = re.compile(sh.status_pattern("cafe"))
    assert pattern.search(COLOUR_PROMPT + line + "\r\n") is None
    answer = COLOUR_PROMPT + line + "\r\r\nhwrng0\r\r\nbbv-rc-cafe=127\r\r\n"
    found = pattern.search(answer)
    assert found and found.group(1) == "127"
    assert sh.command_output(answer[:found.start()]) == "hwrng0"
    assert pattern.search("bbv-rc-beef=0\r\n") is None  # another session's marker


def test_statuses_are_this_sessions_markers_in_order():
    text = ("x; echo bbv-rc-feed=$?\r\r\nbbv-rc-feed=0\r\r\nbbv-rc-beef=3\r\n"
            "bbv-rc-feed=127\r\n")
    assert sh.statuses(text, "feed") == [0, 127]


def test_lost_virtio_output_is_explained_when_the_serial_saw_the_command_finish():
    from types import SimpleNamespace

    from barebox_virtio_cli.session.scripted import _lost_output_note

    serial = SimpleNamespace(transcript=SimpleNamespace(
        text=lambda: "bbv-rc-feed=0\r\r\nls /dev; echo bbv-rc-feed=$?\r\r\nbbv-rc-feed=1\r\r\n"))
    virtio = SimpleNamespace(nonce="feed", sent=2)
    assert "serial console shows it finished (exit status 1)" in _lost_output_note(serial, virtio)
    virtio.sent = 3  # the third command did not finish on the serial either: no note
    assert _lost_output_note(serial, virtio) == ""


def test_clean_removes_colours_line_ends_and_countdown_backspaces():
    raw = "Hit any to stop autoboot:    3\x08\x08\x08\x08   2\r\n" + COLOUR_PROMPT
    assert sh.clean(raw) == "Hit any to stop autoboot:    2\nbarebox@ARM QEMU virt:/ "


@pytest.mark.parametrize("command, problem", [
    ("  ", "is empty"), ("ls\nls", "line break"), ("a\x01x", "control character"),
    ("echo hi # note", "'#' comment"), ("# note", "'#' comment"), ("ls;#x", "'#' comment"),
    ("echo 'a", "unclosed ' quote"), ('echo "a\\"', 'unclosed " quote'),
    ("echo \"it's\"", "unclosed ' quote"), ("echo a\\", "ends in a backslash"),
    ("ls | cat", "single '|'"), ("ls &", "single '&'")])
def test_check_command_refuses_what_cannot_be_one_line(command, problem):
    assert problem in sh.check_command(command)


@pytest.mark.parametrize("command", [
    "echo 'a\tb'; ls", "echo a#b", "echo '# x'", 'echo "# $x"', "echo \\# x", "echo 'a\\'",
    'echo "it\'s\'"', "echo a\\\\", 'echo "a;b|c&d #e"', "true && false || echo x"])
def test_check_command_accepts_whole_lines(command):
    assert sh.check_command(command) is None


def test_the_longest_command_fills_barebox_line_buffer_exactly():
    room = sh.LINE_MAX - len(sh.command_line("", "0" * sh.NONCE_LENGTH))
    assert sh.check_command("x" * room) is None
    assert f"at most {room}" in sh.check_command("x" * (room + 1))
    assert len(sh.command_line("x" * room, "0" * sh.NONCE_LENGTH)) == sh.LINE_MAX


def test_last_lines_skip_blank_lines_and_keep_the_end():
    text = "".join(f"line {i}\r\n\r\n" for i in range(30))
    assert sh.last_lines(text, 3) == ["line 27", "line 28", "line 29"]


def _result(*outputs: str, statuses=None) -> ScriptResult:
    statuses = statuses or [PASSED] * len(outputs)
    steps = [Step(f"cmd{i}", status, out, 0 if status == PASSED else 1, 0.5)
             for i, (out, status) in enumerate(zip(outputs, statuses, strict=True))]
    return ScriptResult("vexpress", "serial", Step(None, PASSED, "boot log: virtio", None, 1.0),
                        steps, duration=2.0)


def test_expectations_match_the_combined_output_per_line():
    result = _result("virtioblk0  virtioblk1", "hwrng0")
    check_expectations(result, ["virtioblk1", r"^hwrng\d$", "^virtioblk1", "virtio$"])
    assert [e.ok for e in result.expectations] == [True, True, False, False]
    assert result.expectations[1].match == "hwrng0"
    assert not result.ok and summary(result).startswith("FAIL: 2/2 commands passed, 2/4")
    assert result.last_lines == ["virtioblk0  virtioblk1", "hwrng0"]


def test_met_expectations_keep_no_last_lines_and_an_error_keeps_its_own():
    result = _result("hwrng0")
    check_expectations(result, ["hwrng0"])
    assert result.last_lines == []
    result.last_lines = ["barebox@x:/ hang"]
    check_expectations(result, ["zzz"])
    assert result.last_lines == ["barebox@x:/ hang"]


def test_expectations_without_commands_match_the_boot_log():
    result = _result()
    check_expectations(result, ["virtio$"])
    assert result.ok and summary(result).startswith("PASS")


def test_bad_regex_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--expect '\(' is not a valid regular expression"):
        compile_patterns(["ok", "("])


def test_empty_regex_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--expect '' matches any output"):
        compile_patterns(["ok", ""])


def test_junit_has_one_case_per_boot_command_and_expectation():
    result = _result("a\x07b", "", "", statuses=[FAILED, TIMEOUT, SKIPPED])
    result.error, result.last_lines = "timed out", ["barebox@x:/ hang"]
    check_expectations(result, ["a", "zzz"])
    suite = ET.fromstring(to_junit(result)).find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["boot", "cmd0", "cmd1", "cmd2", "a", "zzz"]
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped")] == \
        ["6", "2", "1", "1"]
    assert cases[1].find("failure").text == "a?b"  # XML cannot carry BEL
    assert cases[2].find("error").text == "barebox@x:/ hang"
    assert cases[5].find("failure").get("message") == "/zzz/ not found in the commands' output"
    assert cases[5].find("failure").text == "barebox@x:/ hang"


def test_json_carries_every_step_and_the_verdict():
    result = _result("out")
    check_expectations(result, ["o+"])
    data = json.loads(to_json(result))
    assert data["ok"] is True
    assert data["commands"][0] == {"command": "cmd0", "status": "passed", "output": "out",
                                   "exit_status": 0, "duration": 0.5, "message": ""}
    assert data["expectations"] == [{"pattern": "o+", "match": "o", "ok": True}]


class _FakeBarebox:
    """The barebox side of a console on a socketpair: prints the boot, answers keys."""

    def __init__(self):
        import socket

        self.ours, self.theirs = socket.socketpair()
        self.got = b""

    def print(self, text: str) -> None:
        self.theirs.sendall(text.encode())

    def read(self, count: int) -> bytes:
        self.theirs.settimeout(5)
        data = b""
        while len(data) < count:
            data += self.theirs.recv(count - len(data))
        self.got += data
        return data


@pytest.mark.parametrize("autoboot", [True, False])
def test_activate_stops_autoboot_then_types_the_command(autoboot):
    """attach's serial watcher and scripted boots share one Shell: stop autoboot, wait for the
    prompt, type the activation command, wait for the prompt again."""
    import threading

    from barebox_virtio_cli.session.scripted import activate, fd_shell

    box = _FakeBarebox()

    def barebox():
        box.print("barebox 2026.06.0\r\n")
        if autoboot:
            box.print("Hit m for menu or any to stop autoboot:    3")
            assert box.read(1) == b"\x03"
            box.print("\r\n")
        box.print(COLOUR_PROMPT)
        assert box.read(len("cs2.active=ioe\n")) == b"cs2.active=ioe\n"
        box.print("cs2.active=ioe\r\n" + COLOUR_PROMPT)

    thread = threading.Thread(target=barebox, daemon=True)
    thread.start()
    fd = box.ours.fileno()
    log = _Log()
    activate(fd_shell(fd, fd, "serial console", 5, tee=log), "cs2.active=ioe", 5)
    thread.join(5)
    assert box.got.endswith(b"cs2.active=ioe\n")
    assert b"barebox 2026.06.0" in log.data  # the tee got what was read


def test_a_line_typed_with_a_window_stays_that_close_to_the_echo():
    """Under record (qemu/args.RECORD_TYPING_WINDOW) QEMU hands keys to the UART without
    asking it for room: however slowly the guest reads, bbv has at most the window typed and
    not yet echoed; the echo of each part lets the next go."""
    import threading
    import time

    from barebox_virtio_cli.session.scripted import fd_shell

    box, line, unread = _FakeBarebox(), "echo " + "typed ahead " * 4, []

    def barebox():
        while len(box.got) <= len(line):
            time.sleep(0.05)  # a guest that reads late: what bbv typed meanwhile waits
            data = box.theirs.recv(4096)
            unread.append(len(data))
            box.got += data
            box.print(data.decode().replace("\n", "\r\n"))  # echoed, as barebox does

    thread = threading.Thread(target=barebox, daemon=True)
    thread.start()
    fd = box.ours.fileno()
    shell = fd_shell(fd, fd, "serial console", 5, window=8)
    shell.type_line(line, 5)
    thread.join(5)
    assert box.got == (line + "\n").encode()
    assert max(unread) == 8 and len(unread) > len(line) // 8


class _Log:
    def __init__(self):
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


def test_activator_stops_autoboot_then_types_the_command_once_at_the_prompt():
    act = sh.Activator("cs2.active=ioe")
    assert act.feed("barebox 2026.06\r\nHit m for menu or any to stop autob") == b""
    assert act.feed("oot:    3") == b"\x03"
    assert act.feed("\x1b[1;32mbarebox@qemu malta:/\x1b[0m ") == b"cs2.active=ioe\n"
    assert not act.done
    assert act.feed("cs2.active=ioe\r\nbarebox@qemu malta:/ ") == b""
    assert act.done and act.feed("barebox@qemu malta:/ ") == b""


# barebox v2026.06 on vexpress, `bbv run --deterministic`: the console up to the countdown and
# its `dmesg -t` (cut), then a message logged after the key (the network opened).
VEXPRESS_BOOT = ("Board: ARM QEMU virt\nERROR: gpio_keys: gpio #0 can not be requested\n"
                 "malloc space: 0x47c80800 -> 0x4f900fff (size 124.5 MiB)\n"
                 "mounted /dev/fw_cfg on /mnt/fw_cfg\n"
                 "envfs: no envfs (magic mismatch) - envfs never written?\n\n"
                 "Hit m for menu or any to stop autoboot:    3\n"
                 "eth0: got preset MAC address: 52:54:00:12:34:56\n")
VEXPRESS_DMESG = ("[      3188us] Board: ARM QEMU virt\r\n"
                  "[    103801us] gpio_keys: gpio #0 can not be requested\r\n"
                  "[    150000us] state: a message below the console's log level\r\n"
                  "[    224559us] malloc space: 0x47c80800 -> 0x4f900fff (size 124.5 MiB)\r\n"
                  "[    283621us] envfs: no envfs (magic mismatch) - envfs never written?\r\n"
                  "[   1283621us] eth0: got preset MAC address: 52:54:00:12:34:56\r\n")


def test_boot_to_prompt_is_the_last_message_the_console_showed_before_the_key():
    assert sh.last_boot_message(VEXPRESS_DMESG, VEXPRESS_BOOT) == (
        283621, "envfs: no envfs (magic mismatch) - envfs never written?")


def test_without_a_countdown_the_whole_boot_log_counts_and_order_matters():
    boot = "Board: ARM QEMU virt\nfirst\nsecond\n"
    assert sh.last_boot_message("[  10us] first\n[  20us] second\n", boot) == (20, "second")
    # logged again later, after what the console showed last: the earlier one counts
    assert sh.last_boot_message("[  10us] second\n[  20us] first\n", boot) == (10, "second")


@pytest.mark.parametrize("dmesg", ["", "Unknown command 'dmesg' - try 'help'",
                                   "[  10us] only after the key\n", "no timestamps here\n"])
def test_no_boot_message_gives_no_guest_time(dmesg):
    assert sh.last_boot_message(dmesg, "Board: x\nHit any to stop autoboot: 3\n"
                                "only after the key\n") is None


def test_guest_time_is_in_the_json_and_its_line():
    from barebox_virtio_cli.session.report import GuestTime, guest_time_line

    result = ScriptResult("vexpress", "serial", guest_time=GuestTime(283621, "envfs: no envfs"))
    assert json.loads(to_json(result))["guest_time"] == {"us": 283621,
                                                         "message": "envfs: no envfs"}
    assert json.loads(to_json(ScriptResult("vexpress", "serial")))["guest_time"] is None
    assert guest_time_line(result.guest_time) == (
        "boot to prompt in guest time: 283621 us (barebox's last boot message, "
        "'envfs: no envfs')")
    assert "unknown" in guest_time_line(None) and "CONFIG_CMD_DMESG" in guest_time_line(None)
