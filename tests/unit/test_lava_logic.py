"""bbv lava's pure parts: lavacli identities, the REST answers' results and logs, the job
state model, what passes through to the jobs, and image URLs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.lava import results
from barebox_virtio_cli.lava.identity import Server, base_url, parse_identities, resolve
from barebox_virtio_cli.lava.serve import check_free, parse_address
from barebox_virtio_cli.lava.service import Images, Overrides
from barebox_virtio_cli.lava.state import Job, exit_status

pytestmark = pytest.mark.pure

# As `lavacli identities add` writes it (lavacli 1.2): the XML-RPC endpoint, user and token.
LAVACLI_YAML = """\
default:
  uri: https://lava.example.org/RPC2
  username: alice
  token: s3cret-default
lab:
  uri: http://192.0.2.7:8080/RPC2/
  token: s3cret-lab
notoken:
  uri: http://lava.local/
"""


def test_lavacli_identities_give_the_rest_base_url_and_token():
    ids = parse_identities(LAVACLI_YAML, "lavacli.yaml")
    default = resolve(ids, "lavacli.yaml", None, None, None)
    assert (default.url, default.token) == ("https://lava.example.org", "s3cret-default")
    lab = resolve(ids, "lavacli.yaml", "lab", None, None)
    assert (lab.url, lab.token) == ("http://192.0.2.7:8080", "s3cret-lab")
    assert lab.job_url(12) == "http://192.0.2.7:8080/scheduler/job/12"
    assert resolve(ids, "f", "notoken", None, None).token is None
    # --token replaces the identity's; --url (with its token) replaces the identity
    assert resolve(ids, "f", "lab", None, "other").token == "other"
    given = resolve(ids, "f", None, "http://h:9/api/v0.2/", "t")
    assert (given.url, given.token, given.source) == ("http://h:9", "t", "--url")


def test_the_token_stays_out_of_repr():
    server = Server("http://h", "tok-123", "--url")
    assert "tok-123" not in repr(server) and "tok-123" not in str(server)


@pytest.mark.parametrize(("identities", "identity", "url", "message"), [
    (None, None, None, "no LAVA server given"),
    ({"default": {"uri": "http://h/RPC2"}}, "lab", None, "no identity 'lab' in F "
                                                         "(identities: default)"),
    ({"lab": {"token": "x"}}, "lab", None, "identity 'lab' in F has no uri"),
    ({}, "lab", "http://h", "--url and --identity both name the server"),
    ({}, None, "ftp://h", "not an http:// or https:// URL"),
])
def test_bad_server_settings_say_what_to_do(identities, identity, url, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(identities, "F", identity, url, None)


@pytest.mark.parametrize("text", ["a: [", "- just\n- a list\n", "lab: plain\n"])
def test_identities_file_not_in_lavacli_format(text):
    with pytest.raises(UsageError, match="lavacli.yaml"):
        parse_identities(text, "lavacli.yaml")


def test_base_url_drops_credentials_and_api_paths():
    assert base_url("https://u:p@lava.org/RPC2", "x") == "https://lava.org"
    assert base_url("http://[::1]:8000/lab/api/", "x") == "http://[::1]:8000/lab"


# Shapes of LAVA 2023.01's REST answers (/jobs/ID/suites/, /tests/, /logs/), as captured.
SUITES = [{"id": 7, "name": "lava", "job": 3}, {"id": 8, "name": "0_bbv", "job": 3}]
TESTS = [
    {"suite": 7, "name": "validate", "result": "pass", "metadata": "case: validate\n"},
    {"suite": 8, "name": "1-ls_dev", "result": "pass", "metadata": ""},
    {"suite": 8, "name": "2-false", "result": "fail", "metadata": ""},
    {"suite": 7, "name": "job", "result": "fail",
     "metadata": "case: job\ndefinition: lava\nerror_msg: 'Invalid job data: [\"Image file "
                 "missing\"]'\nerror_type: Job\nresult: fail\n"},
]


def test_cases_carry_their_suites_and_only_failed_lava_ones_are_shown():
    cases = results.cases(TESTS, SUITES)
    assert [(c.suite, c.name, c.result) for c in cases] == [
        ("lava", "validate", "pass"), ("0_bbv", "1-ls_dev", "pass"), ("0_bbv", "2-false", "fail"),
        ("lava", "job", "fail")]
    assert [c.name for c in results.shown(cases)] == ["1-ls_dev", "2-false", "job"]
    assert results.job_error(TESTS, SUITES) == ("Job", 'Invalid job data: ["Image file missing"]')
    assert results.job_error(TESTS[:3], SUITES) is None


def test_log_lines_and_the_tail_shown_for_a_failure():
    text = ('- {"dt": "t", "lvl": "info", "msg": "start: 0 validate"}\n'
            '- {"dt": "t", "lvl": "debug", "msg": "noise"}\n'
            '- {"dt": "t", "lvl": "target", "msg": "barebox 2026.06\\r\\nprompt"}\n'
            '- {"dt": "t", "lvl": "results", "msg": {"case": "job", "result": "fail"}}\n'
            'not yaml at all\n'
            '- {"dt": "t", "lvl": "error", "msg": "JobError: gone"}\n')
    lines = results.log_lines(text)
    assert [(line.level, line.message) for line in lines][:4] == [
        ("info", "start: 0 validate"), ("debug", "noise"), ("target", "barebox 2026.06"),
        ("target", "prompt")]
    assert results.tail(lines, 5) == ["info: start: 0 validate", "barebox 2026.06", "prompt",
                                      "not yaml at all", "error: JobError: gone"]
    assert results.tail(lines, 2) == ["not yaml at all", "error: JobError: gone"]


def test_junit_cases():
    xml = ('<testsuites><testsuite name="0_bbv"><testcase name="a"/>'
           '<testcase name="b"><failure type="failure"/></testcase>'
           '<testcase name="c"><skipped/></testcase></testsuite></testsuites>')
    assert [(c.name, c.result) for c in results.junit_cases(xml)] == [
        ("a", "pass"), ("b", "fail"), ("c", "skip")]


def test_job_phases_as_the_server_moves_it():
    job = Job(3, "vexpress", "http://h/scheduler/job/3")
    assert job.phase() == "queued"
    assert not job.update({"state": "Submitted", "health": "Unknown"})
    assert job.update({"state": "Running", "actual_device": "qemu01",
                       "start_time": "2026-12-06T12:08:07.183210Z"})
    job.worker = "w1"
    assert job.phase() == "running on w1 (qemu01)"
    assert not job.finished and not job.passed
    assert job.update({"state": "Finished", "health": "Complete",
                       "end_time": "2026-12-06T12:08:12.683210Z"})
    assert job.duration == pytest.approx(5.5)
    job.cases = results.cases(TESTS[:2], SUITES)
    assert job.passed and exit_status([job]) == 0
    assert job.summary() == "Complete, 1/1 test cases passed in 5.5 s"
    job.cases = results.cases(TESTS[:3], SUITES)
    assert not job.passed and exit_status([job]) == 1
    assert exit_status([]) == 1


@pytest.mark.parametrize("health", ["Incomplete", "Canceled"])
def test_a_job_that_did_not_complete_never_passes(health):
    job = Job(1, "t", "u")
    job.update({"state": "Finished", "health": health})
    assert not job.passed


def test_overrides_pass_through():
    job = {"device_type": "qemu", "priority": "medium", "tags": ["a"]}
    Overrides("qemu-big", ("b", "a"), "80").apply(job)
    assert job == {"device_type": "qemu-big", "priority": 80, "tags": ["a", "b"]}
    assert Overrides().apply({"priority": "low"}) == {"priority": "low"}


def test_artifact_urls_per_target_and_clashing_names(tmp_path):
    one, two = tmp_path / "a", tmp_path / "b"
    for d in (one, two):
        d.mkdir()
        (d / "barebox-dt-2nd.img").write_bytes(b"x")
    per_target = Images(artifact_url="https://ci/{target}/")
    assert per_target.url("vexpress", one / "barebox-dt-2nd.img") == \
        "https://ci/vexpress/barebox-dt-2nd.img"
    assert per_target.url("riscv64", two / "barebox-dt-2nd.img") == \
        "https://ci/riscv64/barebox-dt-2nd.img"
    flat = Images(artifact_url="https://ci/builds")
    assert flat.url("vexpress", one / "barebox-dt-2nd.img") == "https://ci/builds/barebox-dt-2nd.img"
    with pytest.raises(UsageError, match=r"put \{target\} in the URL"):
        flat.url("riscv64", two / "barebox-dt-2nd.img")
    with pytest.raises(UsageError, match="unquoted"):
        flat.url("x", Path(tmp_path / "a b.img"))


def test_file_server_routes_keep_same_named_files_apart(tmp_path):
    from barebox_virtio_cli.lava.serve import FileServer

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.img").write_bytes(b"1")
    (tmp_path / "x.img").write_bytes(b"2")
    served = FileServer("192.0.2.1", 8000)
    first = served.url(tmp_path / "a" / "x.img")
    assert first == "http://192.0.2.1:8000/1/x.img"
    assert served.url(tmp_path / "x.img") == "http://192.0.2.1:8000/2/x.img"
    assert served.url(tmp_path / "a" / ".." / "a" / "x.img") == first


@pytest.mark.parametrize(("text", "message"), [
    ("8000", "is not HOST:PORT, an address the LAVA workers reach"), ("host:", "HOST:PORT"),
    ("h:x", "HOST:PORT"), ("host:0", "port 0 out of range"),
    ("host:70000", "port 70000 out of range")])
def test_serve_address_must_be_host_and_port(text, message):
    with pytest.raises(UsageError, match=f"--serve '{text}'.*{message}"):
        parse_address(text)


def test_serve_port_in_use_is_refused_up_front():
    assert parse_address("[::1]:8000") == ("::1", 8000)
    assert parse_address(":8000") == ("0.0.0.0", 8000)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match="in use"):
            check_free("127.0.0.1", port)


# --- --expect in a LAVA job: the same verdict as bbv run's ------------------------------------

PROMPT_SEEN = "\x1b[1;32mbarebox@\x1b[1;36mARM QEMU virt:/\x1b[0m "
OUTPUTS = [("version", "\nbarebox 2026.06.0-00056 #1 Sun Dec 6\n\nBoard: ARM QEMU virt"),
           ("ls /dev", "full  hwrng0  null  virtioblk0  zero"), ("false", "")]
# barebox under load: a warning right after the echo of the typed line, on the same line
WARNING = "\x1b[1;33mWARNING:\x1b[0m poller: 'net' takes unexpectedly long: 23ms"
BOOT_LOG = "barebox 2026.06.0 #1\nBoard: ARM QEMU virt\nnetconsole: registered\n"


def console_after_boot(outputs) -> str:
    """What LAVA's dispatcher holds after bbv's command steps: each typed line as barebox
    echoes it, the output, the status marker, the coloured prompt; lines end in \\r\\r\\n (the
    pty adds a \\r to barebox's \\r\\n)."""
    from barebox_virtio_cli.session import shell as sh

    text = ""
    for index, (command, output) in enumerate(outputs):
        nonce = f"lava{index + 1:04d}"
        lines = [sh.command_line(command, nonce) + (WARNING if index == 1 else ""),
                 *([output] if output else []),
                 f"{sh.MARKER}{nonce}={1 if command == 'false' else 0}"]
        text += "\r\r\n".join(line.replace("\n", "\r\r\n") for line in lines) + "\r\r\n"
        text += PROMPT_SEEN
    return text


@pytest.mark.parametrize("pattern", [
    "virtioblk0", r"^Board: ARM", r"virt$", r"(?i)^ZERO", r"zero$", r"^$", r"0\n\nBoard",
    r"full\s+hwrng0", "echo bbv-rc", "version", r"^barebox 2026.*Dec 6$", "Board.*null",
    r"bbv-rc-lava0001=0", "[$]", r"[^]]+virt$", "nothing like this", "^full", "WARNING"])
@pytest.mark.parametrize("with_commands", [True, False])
def test_lava_expectation_judges_as_bbv_run_does(pattern, with_commands):
    """The success and failure patterns of an expectation step, searched as LAVA's pexpect
    searches (DOTALL, from the start of what it read), agree with bbv run's check."""
    import re

    from barebox_virtio_cli.export.jobs import AUTOBOOT_OR_PROMPT, expectation_steps
    from barebox_virtio_cli.session.report import ScriptResult, Step, check_expectations

    result = ScriptResult("vexpress", "serial", boot=Step(None, output=BOOT_LOG))
    if with_commands:
        result.commands = [Step(command, output=output) for command, output in OUTPUTS]
        console = console_after_boot(OUTPUTS)
    else:
        console = BOOT_LOG.replace("\n", "\r\r\n") + "\r\r\nHit any to stop autoboot:    3"
    check_expectations(result, [pattern])
    steps = expectation_steps([pattern], with_commands)
    if not with_commands:
        wait = steps.pop(0)  # the unnamed step that waits for the end of the boot log
        assert re.search(wait["successes"][0]["message"], console, re.DOTALL).start() == 0
        assert re.search(AUTOBOOT_OR_PROMPT, console)
    (step,) = steps
    success = re.search(step["successes"][0]["message"], console, re.DOTALL)
    failure = re.search(step["failures"][0]["message"], console, re.DOTALL)
    assert bool(success) == result.expectations[0].ok, console
    assert bool(failure) != bool(success)
    for found in (success, failure):  # a match consumes nothing of what LAVA read
        assert found is None or (found.start(), found.end()) == (0, 0)


def test_lava_expectation_keeps_the_patterns_flags_and_rejects_bad_ones():
    import re

    from barebox_virtio_cli.export.jobs import expectation_steps, lava_expectation

    assert "(?ism:" in lava_expectation(r"(?i)(?s)a.b", True)
    assert "(?m-s:" in lava_expectation("a.b", True)
    for pattern in (r"(?i)a", r"(?s)a.b", r"(?x) a b # c", "a$b", r"\$", "[$]", r"[\]$]"):
        re.compile(lava_expectation(pattern, True), re.DOTALL)
    with pytest.raises(UsageError, match=r"--expect 'a\(' is not a valid regular expression"):
        expectation_steps(["a("], True)


def test_case_names_are_what_lava_server_takes():
    """lava-server 2023.01 (lava_scheduler_app/schema.py) refuses a dot in an interactive
    step's name, which its dispatcher would take."""
    import re

    from barebox_virtio_cli.export.jobs import expectation_steps, interactive_steps

    steps = interactive_steps(["ls /mnt/a.b", "version"]) + \
        expectation_steps([r"^barebox 2026\.06\.0", "$"], True)
    names = [step["name"] for step in steps]
    assert names == ["1-ls_mnt_a_b", "2-version", "expect-1-barebox_2026_06_0",
                     "expect-2-pattern"]
    assert all(re.fullmatch(r"[a-zA-Z0-9-_]+", name) for name in names)


def test_job_needs_reads_device_type_and_tags_of_a_job_file():
    from barebox_virtio_cli.lava.service import job_needs

    assert job_needs("device_type: qemu\ntags: [fast, bbv-second]\nactions: []\n") == \
        ("qemu", ("fast", "bbv-second"))
    assert job_needs("device_type: qemu\nactions: []\n") == ("qemu", ())
    assert job_needs("device_type: qemu\ntags: odd\n") == ("qemu", ())
