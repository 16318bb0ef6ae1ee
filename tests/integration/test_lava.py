"""bbv lava submit/wait against a real LAVA instance on this host (tests/lava_farm.py: Debian's
lava-server on PostgreSQL, scheduler, publisher, gunicorn, two lava-worker processes with a
qemu device each), running real QEMU jobs with the tiny guest. What bbv reports is checked
against what the server says."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import lava_farm
import pytest
import requests
import yaml
from conftest import BBV, bbv, need, one_line_error
from http_helpers import HttpServer
from process_helpers import CROSS, TINYGUEST, assemble

from barebox_virtio_cli.lava import results

pytestmark = [pytest.mark.qemu, need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld",
                                     f"{CROSS}objcopy")]


@pytest.fixture(scope="session")
def farm():
    absent = lava_farm.missing()
    if absent:
        pytest.skip(f"LAVA not installed ({', '.join(absent)}); tests/run.sh installs "
                    "lava-server, lava-dispatcher and postgresql")
    if os.geteuid() != 0:
        pytest.skip("the LAVA instance is set up as root (lava-server manage, pg_ctlcluster)")
    with lava_farm.session(2) as started:  # waits while another test run on this host uses it
        yield started


@pytest.fixture(scope="session")
def guest(tmp_path_factory) -> Path:
    """The tiny guest: `hang` keeps a job running until it is cancelled."""
    return assemble(TINYGUEST / "tinyguest.s", tmp_path_factory.mktemp("lavaguest"), "guest")


def lava(farm, *args: str, cwd=None, env=None, **kw) -> subprocess.CompletedProcess:
    full = {"BBV_LAVA_URL": farm.url, "BBV_LAVA_TOKEN": farm.token, **(env or {})}
    return bbv("lava", *args, cwd=cwd, env=full, timeout=kw.pop("timeout", 240), **kw)


def api(farm, path: str):
    got = requests.get(f"{farm.url}/api/v0.2{path}", timeout=30,
                       headers={"Authorization": f"Token {farm.token}"})
    got.raise_for_status()
    return got.json() if "junit" not in path else got.text


def server_cases(farm, job_id: int) -> list[results.Case]:
    return results.cases(api(farm, f"/jobs/{job_id}/tests/?limit=1000")["results"],
                         api(farm, f"/jobs/{job_id}/suites/")["results"])


def finished(farm, job_id: int, within: float = 90) -> dict:
    deadline = time.monotonic() + within
    while True:
        job = api(farm, f"/jobs/{job_id}/")
        if job["state"] == "Finished" or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def job_files(tmp_path: Path, guest: Path, *names: str, commands=("true",)) -> list[str]:
    """Job files as `bbv export lava` writes them, one per name."""
    paths = []
    for name in names:
        execs = [a for c in commands for a in ("--exec", c)]
        done = bbv("export", "lava", "-t", "vexpress", "--image", str(guest), *execs,
                   "--job-name", name, "-o", str(tmp_path / f"{name}.yaml"))
        assert done.returncode == 0, done.stderr
        paths.append(str(tmp_path / f"{name}.yaml"))
    return paths


def test_results_and_junit_are_the_servers(farm, guest, tmp_path):
    done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--rng",
                "--exec", "ls /dev", "--exec", "false", "--exec", "echo hi $?",
                "--junit-dir", str(tmp_path), "--json")
    assert done.returncode == 1, done.stderr  # a test case failed
    report = yaml.safe_load(done.stdout)["jobs"]
    assert len(report) == 1
    job = report[0]
    server = finished(farm, job["id"])
    assert (job["state"], job["health"]) == (server["state"], server["health"]) == \
        ("Finished", "Complete")
    assert job["device"] == server["actual_device"]
    assert job["worker"] == api(farm, f"/devices/{server['actual_device']}/")["worker_host"]
    theirs = server_cases(farm, job["id"])
    assert [results.Case(**c) for c in job["cases"]] == theirs
    mine = {c["name"]: c["result"] for c in job["cases"] if c["suite"] == "0_bbv"}
    assert mine == {"1-ls_dev": "pass", "2-false": "fail", "3-echo_hi": "pass"}
    junit = Path(job["junit"])
    assert junit.parent == tmp_path and junit.read_text() == api(farm, f"/jobs/{job['id']}/junit/")
    # LAVA's JUnit groups the cases by suite, /tests/ lists them by id
    assert sorted(results.junit_cases(junit.read_text()), key=repr) == sorted(theirs, key=repr)
    # the live lines: queued, running on the worker, finished with the count
    assert f"job {job['id']} (vexpress): queued, {farm.url}/scheduler/job/{job['id']}" \
        in done.stderr
    assert f"running on {job['worker']} ({job['device']})" in done.stderr
    assert "finished: Complete, 2/3 test cases passed" in done.stderr
    assert farm.token not in done.stdout + done.stderr


def test_expectations_are_test_cases_that_decide_the_exit_status(farm, guest):
    """--expect: one test case each in LAVA's results, judged on the commands' output; the
    matching run on the tagged device exits 0, the one with a missing pattern 1."""
    met = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--exec", "ls /dev",
               "--exec", "echo hello $?", "--expect", r"^hello 0$", "--expect",
               r"null\s+virtioblk0", "--tags", lava_farm.TAG, "--json")
    assert met.returncode == 0, met.stderr
    (job,) = yaml.safe_load(met.stdout)["jobs"]
    assert api(farm, f"/jobs/{job['id']}/")["actual_device"] == f"{lava_farm.WORKERS[1]}-qemu"
    # the server lists cases by database id, which is not always the order they ran in
    mine = {(c.name, c.result) for c in server_cases(farm, job["id"]) if c.suite == "0_bbv"}
    assert mine == {("1-ls_dev", "pass"), ("2-echo_hello", "pass"),
                    ("expect-1-hello_0", "pass"), ("expect-2-null_s_virtioblk0", "pass")}
    missed = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--exec", "ls /dev",
                  "--expect", "virtioblk1", "--expect", "ls /dev", "--json")
    assert missed.returncode == 1, missed.stderr
    (job,) = yaml.safe_load(missed.stdout)["jobs"]
    assert job["health"] == "Complete" and not job["passed"]
    theirs = server_cases(farm, job["id"])
    assert [results.Case(**c) for c in job["cases"]] == theirs
    # the typed line is not the output: 'ls /dev' is not found
    assert {(c.name, c.result) for c in theirs if c.suite == "0_bbv"} == {
        ("1-ls_dev", "pass"), ("expect-1-virtioblk1", "pass"), ("expect-2-ls_dev", "fail")}
    assert "finished: Complete, 2/3 test cases passed" in missed.stderr


def test_tags_no_device_has_are_refused_before_submitting(farm, guest):
    newest = api(farm, "/jobs/?limit=1&ordering=-id")["results"][0]["id"]
    done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--tags",
                lava_farm.TAG, "--tags", "no-such-tag")
    first, second = (f"{worker}-qemu" for worker in lava_farm.WORKERS)
    assert one_line(done) == (
        f"bbv: error: no 'qemu' device of {farm.url} that can take jobs has the tags "
        f"{lava_farm.TAG}, no-such-tag (online: {first} (no tags), {second} "
        f"({lava_farm.TAG})); the jobs would wait for ever: ask for tags one of them has")
    assert done.returncode == 1
    assert api(farm, "/jobs/?limit=1&ordering=-id")["results"][0]["id"] == newest


def test_bad_expectation_is_a_usage_error(tmp_path):
    env = {"BBV_LAVA_URL": "http://127.0.0.1:9", "BBV_LAVA_TOKEN": "t"}
    done = bbv("lava", "submit", "-t", "vexpress", "--expect", "(unclosed", env=env)
    one_line_error(done, 2, "--expect '(unclosed' is not a valid regular expression")
    job = tmp_path / "job.yaml"
    job.write_text("actions: []\n")
    done = bbv("lava", "submit", str(job), "--expect", "x", env=env)
    one_line_error(done, 2, "give either job files or -t targets (with --exec, --expect)")
    done = bbv("lava", "submit", "-t", "vexpress", "--exec", "true", "--tags", " ", env=env)
    one_line_error(done, 2, "'--tags': an empty tag")


def test_served_images_a_passing_job_and_the_table(farm, guest, tmp_path):
    port = lava_farm.free_port()
    done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--exec", "true",
                "--serve", f"127.0.0.1:{port}", "-v")
    assert done.returncode == 0, done.stderr
    assert f"serving 1 image file(s) at http://127.0.0.1:{port}/" in done.stderr
    job_id = int(done.stdout.split("job/")[1].split()[0])
    definition = yaml.safe_load(api(farm, f"/jobs/{job_id}/")["definition"])
    url = definition["actions"][0]["deploy"]["images"]["barebox"]["url"]
    assert url == f"http://127.0.0.1:{port}/1/guest.img"
    assert ("lava", "http-download", "pass") in [(c.suite, c.name, c.result)
                                                  for c in server_cases(farm, job_id)]
    assert "[vexpress] Sending 'true; echo bbv-rc-lava0001=$?'" in done.stderr  # -v: the log
    row = next(line for line in done.stdout.splitlines() if f"job/{job_id}" in line)
    assert "vexpress" in row and "Complete" in row and "1-true: pass" in row


def test_artifact_url_gives_each_image_its_url(farm, guest):
    done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--exec", "true",
                "--artifact-url", f"file://{guest.parent}/", "--json")
    assert done.returncode == 0, done.stderr
    job_id = yaml.safe_load(done.stdout)["jobs"][0]["id"]
    definition = yaml.safe_load(api(farm, f"/jobs/{job_id}/")["definition"])
    assert definition["actions"][0]["deploy"]["images"]["barebox"]["url"] == \
        f"file://{guest.parent}/guest.img"


def test_jobs_spread_over_workers_no_wait_then_wait(farm, guest, tmp_path):
    files = job_files(tmp_path, guest, "one", "two")
    done = lava(farm, "submit", *files, "--no-wait")
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2 and all(i.isdigit() for i in ids)
    waited = lava(farm, "wait", *ids, "--json")
    assert waited.returncode == 0, waited.stderr
    jobs = yaml.safe_load(waited.stdout)["jobs"]
    assert [j["name"] for j in jobs] == ["one", "two"]
    assert all(j["health"] == "Complete" and j["passed"] for j in jobs)
    # the worker bbv reports is the one the server ran each job on (which of the two the
    # scheduler picks is its business: it may miss a device turning idle and poll 20 s later)
    for job in jobs:
        device = api(farm, f"/jobs/{job['id']}/")["actual_device"]
        assert job["worker"] == api(farm, f"/devices/{device}/")["worker_host"]


def _start_hanging(farm, guest, *extra: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "BBV_LAVA_URL": farm.url, "BBV_LAVA_TOKEN": farm.token}
    proc = subprocess.Popen([*BBV, "lava", "submit", "-t", "vexpress", "--image", str(guest),
                             "--exec", "hang", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    job_id = None
    for line in proc.stderr:
        if job_id is None and "queued" in line:
            job_id = int(line.split("job ")[1].split()[0])
        if "running on" in line:
            return proc, job_id
    raise AssertionError(f"no running job; rc {proc.wait()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_cancels_the_jobs_on_the_server(farm, guest, signum):
    proc, job_id = _start_hanging(farm, guest)
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signum, rest
    assert f"job {job_id} (vexpress): cancelled" in rest
    server = finished(farm, job_id)
    assert (server["state"], server["health"]) == ("Finished", "Canceled")


def test_timeout_cancels_the_jobs(farm, guest):
    started = time.monotonic()
    done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest), "--exec", "hang",
                "--timeout", "4", "--json")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 60
    report = yaml.safe_load(done.stdout)
    assert report["timed_out"] is True
    job_id = report["jobs"][0]["id"]
    assert f"timeout: 4 s passed before 1 job(s) finished; cancelled {job_id}" in done.stderr
    server = finished(farm, job_id)
    assert (server["state"], server["health"]) == ("Finished", "Canceled")


def test_incomplete_job_gives_lavas_reason_and_the_last_log_lines(farm, guest, tmp_path):
    gone = tmp_path / "gone.img"
    shutil.copy(guest, gone)
    (path,) = job_files(tmp_path, gone, "gone")
    gone.unlink()
    done = lava(farm, "submit", path, "--json")
    assert done.returncode == 1, done.stderr
    job = yaml.safe_load(done.stdout)["jobs"][0]
    assert job["health"] == api(farm, f"/jobs/{job['id']}/")["health"] == "Incomplete"
    assert job["error"]["type"] == "Job"
    assert f"Image file '{gone}' does not exist" in job["error"]["message"]
    assert "Incomplete, 0/2 test cases passed" in done.stderr
    assert "Job: Invalid job data" in done.stderr
    tail = [line for line in done.stderr.splitlines() if line.startswith("bbv:   | ")]
    assert tail and tail[-1].endswith("error: JobError: Your job cannot terminate cleanly.")
    assert job["log_tail"] == [line.removeprefix("bbv:   | ") for line in tail]


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_faults_are_one_line_and_never_show_the_token(farm, guest, tmp_path):
    args = ["submit", "-t", "vexpress", "--image", str(guest)]
    bad = lava(farm, *args, "--token", "not-the-token-4711")
    assert bad.returncode == 1
    assert one_line(bad) == (f"bbv: error: LAVA server {farm.url} refused the token (403 "
                             "Invalid token.): give a valid one with --token, BBV_LAVA_TOKEN or "
                             "the identity's token (lavacli identities add --token)")
    debug = bbv("--debug", "lava", *args, "--url", farm.url, "--token", "not-the-token-4711")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "not-the-token-4711" not in debug.stdout + debug.stderr
    assert one_line(lava(farm, *args, env={"BBV_LAVA_TOKEN": ""})) == (
        f"bbv: error: no token for {farm.url}: give --token, BBV_LAVA_TOKEN or an identity "
        "with a token (lavacli identities add --token)")
    down = lava(farm, *args, "--url", f"http://127.0.0.1:{lava_farm.free_port()}")
    assert down.returncode == 1
    assert "cannot reach the LAVA server" in one_line(down) and "Connection refused" in down.stderr
    unknown = lava(farm, *args, "--device-type", "no-such-type")
    assert unknown.returncode == 1
    assert one_line(unknown) == (f"bbv: error: LAVA server {farm.url} has no device type "
                                 "'no-such-type' (it has: qemu); pass --device-type with one "
                                 "of them")
    (path,) = job_files(tmp_path, guest, "broken")
    job = yaml.safe_load(Path(path).read_text())
    del job["timeouts"]
    Path(path).write_text(yaml.safe_dump(job))
    rejected = lava(farm, "submit", path)
    assert rejected.returncode == 1
    assert one_line(rejected) == (f"bbv: error: LAVA server {farm.url} rejected the job for "
                                  "broken: Problem with submitted job data: required key not "
                                  "provided @ data['timeouts']")
    for done in (bad, down, unknown, rejected):
        assert farm.token not in done.stdout + done.stderr


def test_a_url_that_is_not_a_lava_server_is_named(guest, tmp_path):
    """A web server that is not LAVA (or LAVA's URL with a wrong path) answers 404 to the
    listings every LAVA server has: said so in one line, for targets and for job files."""
    web, files = HttpServer(), job_files(tmp_path, guest, "plain")
    try:
        for url in (web.url, f"{web.url}/lava"):
            for what in (["-t", "vexpress", "--image", str(guest)], files):
                done = bbv("lava", "submit", "--url", url, "--token", "T", *what)
                one_line_error(done, 1, f"{url} is not a LAVA server: /api/v0.2/devicetypes/ "
                               "is not found there (404); give the address of LAVA's web UI")
        assert "/api/v0.2/jobs/" not in " ".join(web.requests)  # nothing submitted
        done = bbv("lava", "wait", "--url", web.url, "--token", "T", "1")
        one_line_error(done, 1, f"{web.url} is not a LAVA server: /api/v0.2/jobs/ is not found "
                       "there (404)")
    finally:
        web.close()


def test_a_job_the_server_does_not_have_is_not_found(farm):
    done = lava(farm, "wait", "99999999")
    one_line_error(done, 1, f"job 99999999: not found on {farm.url}")


@need("openssl")
def test_tls_failures_say_what_tls_said(guest, tmp_path):
    """https:// to a plain HTTP port, and a server whose certificate no known CA signed: the
    line quotes TLS's reason (not "SSLError"); REQUESTS_CA_BUNDLE trusts the lab's CA."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    plain, tls = HttpServer(), HttpServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.server.socket = context.wrap_socket(tls.server.socket, server_side=True)
    https = tls.url.replace("http://", "https://")
    args = ["lava", "submit", "--token", "T", "-t", "vexpress", "--image", str(guest)]
    try:
        done = bbv(*args, "--url", plain.url.replace("http://", "https://"))
        one_line_error(done, 1, "cannot reach the LAVA server", "(TLS: wrong version number)")
        done = bbv(*args, "--url", https)
        one_line_error(done, 1, "(TLS: certificate verify failed: self-signed certificate "
                       "(a private CA: REQUESTS_CA_BUNDLE=CA.pem))")
        done = bbv(*args, "--url", https, env={"REQUESTS_CA_BUNDLE": str(cert)})
        one_line_error(done, 1, f"{https} is not a LAVA server")  # reached, over TLS
    finally:
        plain.close()
        tls.close()


def test_a_server_that_hangs_up_is_named():
    """A port that takes the connection and closes it (a crashed proxy, a non-HTTP service):
    the line says so, not "ConnectionError"."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            conn.close()  # with SO_LINGER 0: a reset

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        done = bbv("lava", "wait", "--url", url, "--token", "T", "5")
        one_line_error(done, 1, f"cannot reach the LAVA server {url} (Connection reset by peer)")
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_no_usable_device_is_refused_before_submitting(farm, guest):
    newest = api(farm, "/jobs/?limit=1&ordering=-id")["results"][0]["id"]
    lava_farm.use_devices(0)  # both devices in Maintenance, their workers still online
    try:
        done = lava(farm, "submit", "-t", "vexpress", "--image", str(guest))
    finally:
        lava_farm.use_devices(2)
    assert done.returncode == 1
    assert one_line(done).startswith(f"bbv: error: no 'qemu' device of {farm.url} can take jobs "
                                     "(devices: ")
    for worker in lava_farm.WORKERS:
        assert f"{worker}-qemu Maintenance on {worker} (online)" in done.stderr
    assert api(farm, "/jobs/?limit=1&ordering=-id")["results"][0]["id"] == newest


@need("lavacli")
def test_lavacli_identity(farm, guest, tmp_path):
    config = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    subprocess.run(["lavacli", "identities", "add", "--uri", f"{farm.url}/RPC2", "--username",
                    "bbv", "--token", farm.token, "farm"], env=env, check=True, timeout=60)
    done = bbv("lava", "submit", "-i", "farm", "-t", "vexpress", "--image", str(guest),
               "--exec", "true", env={"XDG_CONFIG_HOME": str(config)})
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split("/scheduler/job/")[1].split()[0]
    waited = bbv("lava", "wait", "-i", "farm", job_id, "--json",
                 env={"XDG_CONFIG_HOME": str(config)})
    assert waited.returncode == 0, waited.stderr
    (job,) = yaml.safe_load(waited.stdout)["jobs"]
    assert (job["name"], job["health"], job["passed"]) == ("bbv vexpress", "Complete", True)
    missing = bbv("lava", "wait", "-i", "lab", "1", env={"XDG_CONFIG_HOME": str(config)})
    assert missing.returncode == 2
    assert one_line(missing) == (f"bbv: error: no identity 'lab' in {config}/lavacli.yaml "
                                 "(identities: farm); add it with 'lavacli identities add' or "
                                 "pass --url and --token")


def test_timeout_bounds_the_calls_before_submitting(guest):
    """A server that takes connections and never answers: --timeout S ends the checks before
    submitting (and wait's look-ups) in about S seconds, not 30 s a request times 4 attempts,
    with one line naming the server."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel completes the handshakes; nothing ever reads or answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        for args in (["submit", "-t", "vexpress", "--image", str(guest)], ["wait", "5"]):
            started = time.monotonic()
            done = bbv("lava", *args, "--url", url, "--token", "T", "--timeout", "3")
            took = time.monotonic() - started
            one_line_error(done, 1, f"cannot reach the LAVA server {url} within --timeout 3 s")
            assert took < 15, took  # unbounded: 4 attempts of 30 s each
    finally:
        listener.close()


def test_a_server_that_hangs_while_bbv_waits_is_noticed():
    """The server answers the job look-up, then takes the next request and never answers
    (a hung gunicorn): without --timeout bbv says so after one request's 30 s, not after 4
    attempts of 30 s each (123 s measured before), and says how to pick the jobs up."""
    import json

    web = HttpServer()
    web.files["/api/v0.2/jobs/5/"] = json.dumps({"id": 5, "description": "bbv vexpress",
                                                 "state": "Submitted"}).encode()
    web.answers["/api/v0.2/jobs/5/"] = 1
    try:
        started = time.monotonic()
        done = bbv("lava", "wait", "--url", web.url, "--token", "T", "5", timeout=120)
        took = time.monotonic() - started
    finally:
        web.close()
    one_line_error(done, 1, f"LAVA server {web.url} stopped answering (no answer within 30 s); "
                   "the jobs go on there: 'bbv lava wait 5' once it answers again")
    assert web.requests == ["/api/v0.2/jobs/5/"] * 2  # the unanswered one was not sent again
    assert took < 60, took
