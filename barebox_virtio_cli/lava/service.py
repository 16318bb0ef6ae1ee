"""`bbv lava submit` and `bbv lava wait` as a service: the jobs `bbv export lava` makes (or job
files), their images reachable by the workers, submitted at once to a LAVA server (which
spreads them over its workers), then watched until each finishes: a live line per change, the
log with -v, results and LAVA's JUnit at the end. A signal or --timeout cancels every job bbv
submitted and has not seen finish."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.export.jobs import check_lava_name, lava_url, to_yaml
from barebox_virtio_cli.export.service import lava_definition
from barebox_virtio_cli.lava import results
from barebox_virtio_cli.lava.client import LavaClient, Unanswered
from barebox_virtio_cli.lava.identity import Server, parse_identities, resolve
from barebox_virtio_cli.lava.serve import FileServer, check_free, parse_address
from barebox_virtio_cli.lava.state import Job
from barebox_virtio_cli.run.request import RunRequest
from barebox_virtio_cli.util.atomic import write_text
from barebox_virtio_cli.util.signals import Signalled, deferred
from barebox_virtio_cli.util.status import say

POLL = 1.0  # seconds between two looks at the unfinished jobs
LOG_TAIL = 8  # log lines shown for an Incomplete job
USABLE_HEALTH = ("Good", "Unknown")  # devices the scheduler gives jobs to
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def identities_path() -> Path:
    """lavacli's identities file, where lavacli looks for it."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or "~/.config").expanduser() / "lavacli.yaml"


def server(identity: str | None, url: str | None, token: str | None) -> Server:
    path = identities_path()
    identities = None
    if not url and path.is_file():
        identities = parse_identities(path.read_text(), str(path))
    return resolve(identities, str(path), identity, url, token)


# --- jobs -----------------------------------------------------------------------------------


@dataclass
class Images:
    """How the workers get the image files: from --artifact-url BASE (BASE/NAME, {target}
    replaced), from bbv's own HTTP server (--serve), or as file:// paths (a worker on this
    machine)."""

    artifact_url: str | None = None
    serve: str | None = None
    served: object = None  # lava.serve.FileServer while --serve runs
    given: dict[str, Path] = field(default_factory=dict)  # artifact URL -> file

    def url(self, target: str, path: Path) -> str:
        if self.served is not None:
            return self.served.url(check_lava_name(path))
        if self.artifact_url is None:
            return lava_url(path)
        url = f"{self.artifact_url.replace('{target}', target).rstrip('/')}/" \
              f"{check_lava_name(path).name}"
        other = self.given.setdefault(url, path.resolve())
        if other != path.resolve():
            raise UsageError(f"--artifact-url: {other} and {path} would both be {url}; put "
                             "{target} in the URL (e.g. https://host/builds/{target}/)")
        return url


def check_images(images: Images, server: Server, for_targets: bool) -> None:
    if images.artifact_url and images.serve:
        raise UsageError("--artifact-url and --serve both say where the images come from; "
                         "give one")
    if images.artifact_url and urlsplit(images.artifact_url).scheme not in \
            ("http", "https", "file"):
        raise UsageError(f"--artifact-url {images.artifact_url}: expected an http://, https:// "
                         "or file:// URL")
    if not for_targets or images.artifact_url or images.serve:
        return
    if urlsplit(server.url).hostname not in LOOPBACK:
        raise UsageError(f"the workers of {server.url} cannot read this machine's files: give "
                         "--serve HOST:PORT (bbv serves the images) or --artifact-url BASE "
                         "(where they are published)")


@dataclass
class Overrides:
    """What passes through to every job: --device-type, --tags, --priority."""

    device_type: str | None = None
    tags: tuple[str, ...] = ()
    priority: str | None = None

    def apply(self, job: dict) -> dict:
        if self.device_type:
            job["device_type"] = self.device_type
        if self.tags:
            job["tags"] = list(dict.fromkeys([*job.get("tags", []), *self.tags]))
        if self.priority:
            job["priority"] = int(self.priority) if self.priority.isdigit() else self.priority
        return job


def target_jobs(requests: list[RunRequest], job_name: str | None, commands: list[str],
                expectations: list[str], job_timeout: int, images: Images,
                overrides: Overrides) -> list[tuple[str, str]]:
    """(target name, job definition) for each target, as `bbv export lava` makes them."""
    jobs = []
    several = len(requests) > 1
    for request in requests:
        name = f"{job_name} {request.target}" if several and job_name else job_name
        target, job = lava_definition(request, name, commands, job_timeout, images.url,
                                      expectations)
        jobs.append((target, to_yaml(overrides.apply(job),
                                     f"LAVA job for bbv target '{target}', bbv lava submit")))
    return jobs


def file_jobs(paths: list[Path], overrides: Overrides) -> list[tuple[str, str]]:
    """(job name, definition) for each job file; the file's text as is unless an override
    applies."""
    import yaml

    jobs = []
    for path in paths:
        try:
            text = path.read_text()
            job = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the job file ({exc})") from None
        except yaml.YAMLError:
            raise UsageError(f"{path}: not valid YAML; is it a LAVA job definition?") from None
        if not isinstance(job, dict) or "actions" not in job:
            raise UsageError(f"{path}: not a LAVA job definition (no 'actions')")
        before = dict(job)
        if overrides.apply(job) != before:
            text = to_yaml(job, f"{path.name}, bbv lava submit")
        jobs.append((str(job.get("job_name") or path.stem), text))
    return jobs


def job_needs(definition: str) -> tuple[str, tuple[str, ...]]:
    """(device type, device tags) a job definition asks for."""
    import yaml

    job = yaml.safe_load(definition) or {}
    tags = job.get("tags") or []
    return str(job.get("device_type", "")), tuple(str(t) for t in tags) \
        if isinstance(tags, list) else ()


def check_devices(client: LavaClient, needs: list[tuple[str, tuple[str, ...]]]) -> None:
    """Refuse device types the server lacks, or has no device of online, with all the tags a
    job asks for (the jobs would wait for ever)."""
    known = client.device_types()
    online = {w["hostname"] for w in client.workers() if w.get("state") == "Online"}
    names: dict[int, str] | None = None
    for device_type, tags in dict.fromkeys(needs):
        if device_type not in known:
            raise BbvError(f"LAVA server {client.server.url} has no device type "
                           f"'{device_type}' (it has: {', '.join(known) or 'none'}); pass "
                           "--device-type with one of them")
        devices = client.devices(device_type)
        usable = [d for d in devices if d.get("health") in USABLE_HEALTH
                  and d.get("worker_host") in online]
        if not usable:
            seen = ", ".join(f"{d['hostname']} {d.get('health')} on "
                             f"{d.get('worker_host') or 'no worker'} "
                             f"({'online' if d.get('worker_host') in online else 'offline'})"
                             for d in devices) or "none"
            raise BbvError(f"no '{device_type}' device of {client.server.url} can take jobs "
                           f"(devices: {seen}); the jobs would wait for ever")
        if not tags:
            continue
        names = client.tags() if names is None else names
        has = {d["hostname"]: sorted(names.get(t, str(t)) for t in d.get("tags") or [])
               for d in sorted(usable, key=lambda d: d["hostname"])}
        if not any(set(tags) <= set(carried) for carried in has.values()):
            seen = ", ".join(f"{host} ({', '.join(carried) or 'no tags'})"
                             for host, carried in has.items())
            raise BbvError(f"no '{device_type}' device of {client.server.url} that can take "
                           f"jobs has the tags {', '.join(tags)} (online: {seen}); the jobs "
                           "would wait for ever: ask for tags one of them has")


# --- submit and watch -----------------------------------------------------------------------


@dataclass
class JobsOutcome:
    jobs: list[Job]
    timed_out: bool = False


def _tag(job: Job) -> str:
    return f"job {job.id} ({job.name})"


def submit_all(client: LavaClient, definitions: list[tuple[str, str]],
               submitted: list[Job]) -> None:
    """Submit every job at once (LAVA schedules them onto its workers); each job is in
    `submitted` as soon as the server took it, so that a failure or a signal cancels it."""
    for name, definition in definitions:
        for job_id in client.submit(definition, name):
            job = Job(job_id, name, client.server.job_url(job_id))
            submitted.append(job)
            say(f"{_tag(job)}: queued, {job.url}")


def cancel(client: LavaClient, jobs: list[Job]) -> list[Job]:
    """Cancel the unfinished jobs (a second signal waits until every request went out)."""
    open_jobs = [job for job in jobs if not job.finished]
    with deferred():
        for index, job in enumerate(open_jobs):
            try:
                client.cancel(job.id)
                say(f"{_tag(job)}: cancelled")
            except Unanswered as exc:  # each further try would wait as long
                say(f"could not cancel {_ids(open_jobs[index:])}: {exc}")
                break
            except BbvError as exc:
                say(f"{_tag(job)}: could not cancel: {exc}")
    return open_jobs


def _ids(jobs: list[Job]) -> str:
    return " ".join(str(job.id) for job in jobs)


class Watch:
    """Polls the unfinished jobs until each is finished or the deadline passes."""

    def __init__(self, client: LavaClient, jobs: list[Job], verbose: bool,
                 junit_dir: Path | None, timeout: float | None,
                 clock: Callable[[], float] = time.monotonic):
        self.client, self.jobs, self.verbose, self.junit_dir = client, jobs, verbose, junit_dir
        self.deadline = clock() + timeout if timeout else None
        self.clock = clock
        self.workers: dict[str, str | None] = {}  # device -> worker

    def run(self) -> bool:
        """True when every job finished, False when the deadline passed first."""
        while True:
            pending = [job for job in self.jobs if not job.finished]
            for job in pending:
                self.look(job)
            if all(job.finished for job in self.jobs):
                return True
            if self.deadline is not None and self.clock() >= self.deadline:
                return False
            time.sleep(POLL)

    def look(self, job: Job) -> None:
        changed = job.update(self.client.job(job.id))
        if job.device and not job.worker:
            if job.device not in self.workers:
                self.workers[job.device] = self.client.device(job.device).get("worker_host")
            job.worker = self.workers[job.device]
            changed = True
        if self.verbose:
            self.stream_log(job)
        if job.finished:
            self.collect(job)
            say(f"{_tag(job)}: finished: {job.summary()}")
            for line in job.log_tail:
                say(f"  | {line}")
        elif changed:
            say(f"{_tag(job)}: {job.phase()}")

    def stream_log(self, job: Job) -> None:
        text = self.client.logs(job.id, job.log_lines)
        lines = results.log_lines(text)
        job.log_lines += len(text.splitlines())
        for line in lines:
            if line.level not in ("debug", "results"):
                say(f"[{job.name}] {line.message}")

    def collect(self, job: Job) -> None:
        """The results of a finished job; its JUnit into --junit-dir."""
        tests, suites = self.client.tests(job.id), self.client.suites(job.id)
        job.cases = results.cases(tests, suites)
        if job.health != "Complete":
            job.error = results.job_error(tests, suites)
            if job.health == "Incomplete":
                job.log_tail = results.tail(results.log_lines(self.client.logs(job.id)),
                                            LOG_TAIL)
        if self.junit_dir is not None:
            path = self.junit_dir / f"{job.id}-{re.sub(r'[^-_.a-zA-Z0-9]+', '_', job.name)}.xml"
            write_text(path, self.client.junit(job.id))
            job.junit = str(path)


def watch(client: LavaClient, jobs: list[Job], verbose: bool, junit_dir: Path | None,
          timeout: float | None, cancel_on_stop: bool) -> JobsOutcome:
    """Watch until every job finished; on --timeout (and, when bbv submitted them, on a
    signal) cancel the unfinished ones."""
    try:
        if Watch(client, jobs, verbose, junit_dir, timeout).run():
            return JobsOutcome(jobs)
    except (Signalled, KeyboardInterrupt):
        if cancel_on_stop:
            cancel(client, jobs)
        else:
            left = _ids([job for job in jobs if not job.finished])
            if left:
                say(f"left running on the server: bbv lava wait {left}")
        raise
    except Unanswered as exc:  # nothing to cancel them with: say where to pick them up
        raise BbvError(f"LAVA server {client.server.url} stopped answering ({exc.reason}); "
                       f"the jobs go on there: 'bbv lava wait {_ids(jobs)}' once it answers "
                       "again") from None
    stopped = cancel(client, jobs)
    say(f"timeout: {timeout:g} s passed before {len(stopped)} job(s) finished; cancelled "
        f"{_ids(stopped)}")
    return JobsOutcome(jobs, timed_out=True)


@dataclass
class SubmitRequest:
    requests: list[RunRequest]
    job_files: list[Path]
    commands: list[str]
    expectations: list[str]
    job_name: str | None
    job_timeout: int
    images: Images
    overrides: Overrides
    wait: bool
    timeout: float | None
    verbose: bool
    junit_dir: Path | None


def submit(server: Server, request: SubmitRequest) -> JobsOutcome:
    """Make and submit the jobs; then, unless --no-wait, watch them to the end."""
    if not server.token:
        raise UsageError(f"no token for {server.url}: give --token, BBV_LAVA_TOKEN or an "
                         "identity with a token (lavacli identities add --token)")
    images = request.images
    check_images(images, server, bool(request.requests))
    if images.serve and not request.wait:
        raise UsageError("--serve serves the images only while bbv waits for the jobs; drop "
                         "--no-wait, or publish them and use --artifact-url")
    if request.junit_dir is not None and not request.junit_dir.is_dir():
        raise UsageError(f"--junit-dir {request.junit_dir}: no such directory")
    if images.serve:
        host, port = parse_address(images.serve)
        check_free(host, port)
        images.served = FileServer(host, port)
    definitions = file_jobs(request.job_files, request.overrides)
    definitions += target_jobs(request.requests, request.job_name, request.commands,
                               request.expectations, request.job_timeout, images,
                               request.overrides)
    client = LavaClient(server)
    submitted: list[Job] = []
    try:
        if request.timeout:  # the checks before submitting end within --timeout too
            client.bound = (request.timeout, time.monotonic() + request.timeout)
        check_devices(client, [job_needs(d) for _, d in definitions])
        client.bound = None
        if images.served is not None:
            images.served.start()
            say(f"serving {len(images.served.files)} image file(s) at {images.served.base}/ "
                "until the jobs finish: the LAVA workers must reach this address")
        try:
            submit_all(client, definitions, submitted)
        except (BbvError, Signalled, KeyboardInterrupt):
            cancel(client, submitted)
            raise
        if not request.wait:
            return JobsOutcome(submitted)
        return watch(client, submitted, request.verbose, request.junit_dir, request.timeout,
                     cancel_on_stop=True)
    finally:
        if images.served is not None:
            images.served.stop()
        client.close()


def wait(server: Server, ids: list[int], verbose: bool, junit_dir: Path | None,
         timeout: float | None) -> JobsOutcome:
    """Watch jobs submitted earlier (`bbv lava submit --no-wait`). A signal leaves them
    running (bbv did not submit them in this call); --timeout cancels them."""
    if junit_dir is not None and not junit_dir.is_dir():
        raise UsageError(f"--junit-dir {junit_dir}: no such directory")
    client = LavaClient(server)
    try:
        jobs = []
        if timeout:
            client.bound = (timeout, time.monotonic() + timeout)
        for job_id in dict.fromkeys(ids):
            data = client.job(job_id)
            job = Job(job_id, str(data.get("description") or job_id), server.job_url(job_id))
            jobs.append(job)
        client.bound = None
        return watch(client, jobs, verbose, junit_dir, timeout, cancel_on_stop=False)
    finally:
        client.close()
