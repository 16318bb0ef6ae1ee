"""A real LAVA instance on this host, without systemd (facts item 23): Debian's lava-server on
PostgreSQL (pg_ctlcluster), its web service (gunicorn), scheduler and publisher, and up to two
lava-worker processes from lava-dispatcher, each with one `qemu` device. tests/run.sh installs
the packages; the one-time database set-up is kept (state file STATE), so a rerun only starts
the processes. Used by the tests' session fixture and by hand:

    python3 tests/lava_farm.py up [WORKERS]    # prints URL and token as shell assignments
    python3 tests/lava_farm.py down            # stops what `up` started

Must run as root (lava-server's manage commands and PostgreSQL's cluster tools). There is one
instance per host: a test session holds LOCK (exclusive) from `up` to `down`, so a second
session on the same host (another checkout's test run) waits for it instead of stopping its
instance mid-test."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests

STATE = Path("/etc/lava-server/bbv-tests.json")  # beside the instance it describes
SETTINGS = Path("/etc/lava-server/settings.d/01-bbv-tests.yaml")
DEVICES = Path("/etc/lava-server/dispatcher-config/devices")
POSTINST = Path("/usr/share/lava-server/postinst.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # a venv or pyenv python cannot import django
RUN = Path("/tmp/bbv-lava-farm")  # logs and pids of the processes `up` started
LOCK = Path("/tmp/bbv-lava-farm.lock")
USER = "bbv"
WORKERS = ("bbv-w1", "bbv-w2")
EVENT_PORT = 5500  # the publisher's event socket (scheduler's default --event-url)


def device_name(worker: str) -> str:
    return f"{worker}-qemu"


def missing() -> list[str]:
    """What is not installed for a LAVA instance here (empty: all there)."""
    need = {"lava-server": "/usr/bin/lava-server", "gunicorn3": "/usr/bin/gunicorn3",
            "lava-worker": "/usr/bin/lava-worker", "pg_ctlcluster": "/usr/bin/pg_ctlcluster",
            "postinst.py": str(POSTINST)}
    return [name for name, path in need.items() if not Path(path).exists()]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["lava-server", "manage", *args], capture_output=True, text=True,
                          check=check, timeout=300)


def clusters() -> list[list[str]]:
    """pg_lsclusters rows: version, name, port, status, ..."""
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def start_postgres() -> list[list[str]]:
    """Start every stopped cluster; the ones this call started (to stop them again)."""
    started = []
    for row in clusters():
        if row[3] == "down":
            subprocess.run(["pg_ctlcluster", row[0], row[1], "start"], check=True, timeout=120)
            started.append(row[:2])
    return started


def set_up() -> dict:
    """The one-time set-up (database, settings, user and token, workers, devices); its
    result is STATE, reused while the user still exists."""
    if STATE.exists():
        state = json.loads(STATE.read_text())
        if manage("users", "details", USER, check=False).returncode == 0:
            return state
    SETTINGS.write_text("EVENT_NOTIFICATION: true\n"
                        f'EVENT_SOCKET: "tcp://127.0.0.1:{EVENT_PORT}"\n')
    subprocess.run([SYSTEM_PYTHON, str(POSTINST), "--config", "--db", "--fixup"],
                   capture_output=True, text=True, check=True, timeout=600)
    if manage("users", "details", USER, check=False).returncode != 0:
        manage("users", "add", "--superuser", "--staff", USER)
    token = secrets.token_hex(24)
    manage("tokens", "add", "--user", USER, "--secret", token)
    if manage("device-types", "details", "qemu", check=False).returncode != 0:
        manage("device-types", "add", "qemu")
    workers = {}
    for worker in WORKERS:
        if manage("workers", "details", worker, check=False).returncode != 0:
            manage("workers", "add", worker)
        details = manage("workers", "details", worker).stdout
        workers[worker] = next(line.split(":", 1)[1].strip() for line in details.splitlines()
                               if line.strip().startswith("token"))
        DEVICES.mkdir(parents=True, exist_ok=True)
        (DEVICES / f"{device_name(worker)}.jinja2").write_text("{% extends 'qemu.jinja2' %}\n")
        if manage("devices", "details", device_name(worker), check=False).returncode != 0:
            manage("devices", "add", "--device-type", "qemu", "--worker", worker,
                   device_name(worker))
    state = {"token": token, "workers": workers}
    STATE.write_text(json.dumps(state))
    STATE.chmod(0o600)
    return state


@dataclass
class Farm:
    url: str
    token: str
    workers: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    postgres: list[list[str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def _spawn(name: str, argv: list[str]) -> int:
    RUN.mkdir(exist_ok=True)
    with open(RUN / f"{name}.log", "ab") as log:
        # A session of its own: stopping it reaches gunicorn's and the worker's children.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    return proc.pid


def _wait_http(url: str, deadline: float) -> None:
    while True:
        with suppress(requests.RequestException):
            if requests.get(url, timeout=5).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"LAVA web service did not answer at {url}; see {RUN}/web.log")
        time.sleep(0.5)


def _wait_online(url: str, token: str, workers: list[str], deadline: float) -> None:
    """Until each worker is Online and its device Idle (scheduler ran once for it)."""
    headers = {"Authorization": f"Token {token}"}
    while True:
        states = {}
        for worker in workers:
            got = requests.get(f"{url}/api/v0.2/workers/{worker}/", headers=headers, timeout=10)
            states[worker] = got.json().get("state") if got.ok else got.status_code
        if all(s == "Online" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"LAVA workers not online: {states}; see {RUN}/")
        time.sleep(0.5)


# Jobs a stopped instance left unfinished (a test run killed mid-job, a machine that kept the
# database across a reboot) hold their devices for ever: the new workers know nothing of them,
# and the scheduler never hands those devices another job.
FINISH_STALE_JOBS = """
from lava_scheduler_app.models import Device, TestJob
TestJob.objects.exclude(state=TestJob.STATE_FINISHED).update(
    state=TestJob.STATE_FINISHED, health=TestJob.HEALTH_CANCELED)
Device.objects.exclude(state=Device.STATE_IDLE).update(state=Device.STATE_IDLE)
"""
# Only the second worker's device carries TAG (bbv lava submit --tags checks the devices).
TAG = "bbv-second"
TAG_SECOND_DEVICE = f"""
from lava_scheduler_app.models import Device, Tag
Device.objects.get(hostname="{WORKERS[1]}-qemu").tags.add(Tag.objects.get_or_create(name="{TAG}")[0])
"""


def up(count: int = 1) -> Farm:
    """Start PostgreSQL (if stopped), the server's processes and `count` workers; jobs an
    earlier instance left unfinished are ended first, and the second device has TAG."""
    down()
    postgres = start_postgres()
    state = set_up()
    manage("shell", "--command", FINISH_STALE_JOBS + TAG_SECOND_DEVICE)
    port, ws_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    pids = {
        "web": _spawn("web", ["gunicorn3", "lava_server.wsgi", "--bind", f"127.0.0.1:{port}",
                              "--workers", "4", "--timeout", "60", "-u", "lavaserver",
                              "-g", "lavaserver"]),
        "publisher": _spawn("publisher", ["lava-server", "manage", "lava-publisher",
                                          "--host", "127.0.0.1", "--port", str(ws_port),
                                          "--log-file", "-"]),
        "scheduler": _spawn("scheduler", ["lava-server", "manage", "lava-scheduler",
                                          "--event-url", f"tcp://127.0.0.1:{EVENT_PORT}",
                                          "--log-file", "-"]),
    }
    workers = list(WORKERS[:count])
    for worker in workers:
        pids[worker] = _spawn(worker, [
            "lava-worker", "--name", worker, "--url", f"{url}/",
            "--ws-url", f"http://127.0.0.1:{ws_port}/ws/", "--token", state["workers"][worker],
            "--worker-dir", f"/var/lib/lava/dispatcher/{worker}", "--log-file", "-",
            # the worker reports a finished job at its next ping (default every 20 s)
            "--ping-interval", "2"])
    farm = Farm(url, state["token"], workers, pids, postgres)
    (RUN / "farm.json").write_text(farm.to_json())
    deadline = time.monotonic() + 120
    _wait_http(f"{url}/api/v0.2/", deadline)
    use_devices(len(workers))
    _wait_online(url, state["token"], workers, deadline)
    return farm


def use_devices(count: int) -> None:
    """Only the first `count` workers' devices take jobs (the others' in Maintenance); a device
    whose worker was stopped stays usable for the next run."""
    for index, worker in enumerate(WORKERS):
        health = "GOOD" if index < count else "MAINTENANCE"
        manage("devices", "update", "--health", health, device_name(worker))


def down() -> None:
    """Stop what the last `up` started (its process groups), PostgreSQL only if it started it."""
    saved = RUN / "farm.json"
    if not saved.exists():
        return
    farm = Farm(**json.loads(saved.read_text()))
    # a job's lava-run is a process group of its own under its worker (lava-worker's
    # setpgrp): stopping the worker alone leaves it running, spinning once the server is gone
    groups = [*farm.pids.values(), *_children({farm.pids[w] for w in farm.workers})]
    for pid in groups:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for pid in groups:
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.1)
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for version, name in farm.postgres:
        subprocess.run(["pg_ctlcluster", version, name, "stop"], check=False, timeout=120)
    saved.unlink()


def _children(parents: set[int]) -> list[int]:
    """The processes whose parent is one of `parents` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) in parents:
                found.append(int(stat.parent.name))
    return found


def _group_alive(pgid: int) -> bool:
    with suppress(ChildProcessError):  # a leader this process started is reaped, not a zombie
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def session(workers: int = 2) -> Iterator[Farm]:
    """The instance for one user at a time on this host: up, yield, down."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield up(workers)
        finally:
            down()


def main(argv: list[str]) -> None:
    if argv[:1] == ["up"]:
        absent = missing()
        if absent:
            sys.exit(f"not installed: {', '.join(absent)}")
        with LOCK.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sys.exit("a test session is using the LAVA instance; try again when it ends")
            farm = up(int(argv[1]) if len(argv) > 1 else 1)
        print(f"BBV_LAVA_URL={farm.url}\nBBV_LAVA_TOKEN={farm.token}")
    elif argv[:1] == ["down"]:
        down()
        shutil.rmtree(RUN, ignore_errors=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
