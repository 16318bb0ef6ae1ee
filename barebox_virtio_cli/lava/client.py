"""LAVA's REST API (v0.2) on requests, token authentication (`Authorization: Token T`). Every
failure becomes one BbvError line that names the server and what to do; none carries the
token (it lives only in the session's headers)."""

from __future__ import annotations

import time

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.lava.identity import Server
from barebox_virtio_cli.util.download import ApiSession, Unreachable

API = "/api/v0.2"
TIMEOUT = 30.0  # seconds for one request
PAGE = 1000  # list endpoints are paginated (limit/offset)


class Rejected(BbvError):
    """The server refused a job definition (its validation message)."""


class Unanswered(BbvError):
    """The server cannot be reached or did not answer in time; `reason` says which."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class LavaClient:
    def __init__(self, server: Server, timeout: float = TIMEOUT):
        self.server = server
        headers = {"User-Agent": "bbv"}
        if server.token:
            headers["Authorization"] = f"Token {server.token}"
        self.session = ApiSession(headers, timeout)
        # (--timeout S, its monotonic end): every call is one attempt that ends by then
        self.bound: tuple[float, float] | None = None

    def close(self) -> None:
        self.session.close()

    # --- requests --------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs):
        """The requests Response; 401/403 and an unreachable server as one line each."""
        url = f"{self.server.url}{API}{path}"
        timeout = None
        if self.bound is not None:  # one attempt, for the time left
            seconds, end = self.bound
            timeout = min(self.session.timeout, end - time.monotonic())
            if timeout <= 0:
                raise self._too_slow(seconds, "no answer in time")
        try:
            response = self.session.request(method, url, timeout=timeout,
                                            once=self.bound is not None, **kwargs)
        except Unreachable as exc:
            if self.bound is not None:
                raise self._too_slow(self.bound[0], exc.reason) from None
            reason = exc.reason
            if reason == "timed out":  # one attempt only (ApiSession): a hung server
                reason = f"no answer within {self.session.timeout:g} s"
            raise Unanswered(f"cannot reach the LAVA server {self.server.url} ({reason}); is "
                             f"it up, and is the URL ({self.server.source}) right?",
                             reason) from None
        if response.status_code in (401, 403):
            detail = _detail(response)
            what = "needs a token" if not self.server.token else "refused the token"
            raise BbvError(f"LAVA server {self.server.url} {what} ({response.status_code} "
                           f"{detail}): give a valid one with --token, BBV_LAVA_TOKEN or the "
                           "identity's token (lavacli identities add --token)")
        return response

    def _json(self, method: str, path: str, what: str, **kwargs):
        response = self._call(method, path, **kwargs)
        if response.status_code == 404:
            # One object missing, or the whole API? Its listing tells (LAVA always has it).
            listing = path if _listing(path) else "/" + path.split("/")[1] + "/"
            if listing == path or \
                    self._call("GET", listing, params={"limit": 1}).status_code == 404:
                raise self._not_lava(listing)
            raise BbvError(f"{what}: not found on {self.server.url}")
        if not response.ok:
            raise BbvError(f"{what}: LAVA server {self.server.url} answered "
                           f"{response.status_code} {_detail(response)}")
        try:
            return response.json()
        except ValueError:
            raise BbvError(f"{what}: {self.server.url} did not answer with JSON; is it a LAVA "
                           "server (REST API v0.2)?") from None

    def _too_slow(self, seconds: float, reason: str) -> Unanswered:
        return Unanswered(f"cannot reach the LAVA server {self.server.url} within --timeout "
                          f"{seconds:g} s ({reason}); is it up, and is the URL "
                          f"({self.server.source}) right?", reason)

    def _not_lava(self, path: str) -> BbvError:
        """Every LAVA server has the listings (/devicetypes/, /jobs/): without one, the URL
        is another web server's, or not the root of LAVA's."""
        return BbvError(f"{self.server.url} is not a LAVA server: {API}{path} is not found "
                        f"there (404); give the address of LAVA's web UI ({self.server.source})")

    def _list(self, path: str, what: str, **params) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self._json("GET", path, what,
                              params={**params, "limit": PAGE, "offset": len(items)})
            items += page.get("results", [])
            if not page.get("next") or not page.get("results"):
                return items

    # --- the API ---------------------------------------------------------------------------

    def submit(self, definition: str, what: str) -> list[int]:
        """The ids of the job(s) a definition makes (one, or several for multinode)."""
        response = self._call("POST", "/jobs/", json={"definition": definition})
        if response.status_code == 404:
            raise self._not_lava("/jobs/")
        if response.status_code == 400:
            raise Rejected(f"LAVA server {self.server.url} rejected the job for {what}: "
                           f"{_detail(response)}")
        if not response.ok:
            raise BbvError(f"submitting {what}: LAVA server {self.server.url} answered "
                           f"{response.status_code} {_detail(response)}")
        return [int(i) for i in response.json()["job_ids"]]

    def job(self, job_id: int) -> dict:
        return self._json("GET", f"/jobs/{job_id}/", f"job {job_id}")

    def cancel(self, job_id: int) -> None:
        """LAVA 2023.01 cancels on GET (its REST view allows only that); POST where a later
        server takes only POST."""
        response = self._call("GET", f"/jobs/{job_id}/cancel/")
        if response.status_code == 405:
            response = self._call("POST", f"/jobs/{job_id}/cancel/")
        if not response.ok:
            raise BbvError(f"cancelling job {job_id}: LAVA server {self.server.url} answered "
                           f"{response.status_code} {_detail(response)}")

    def tests(self, job_id: int) -> list[dict]:
        return self._list(f"/jobs/{job_id}/tests/", f"test cases of job {job_id}")

    def suites(self, job_id: int) -> list[dict]:
        return self._list(f"/jobs/{job_id}/suites/", f"test suites of job {job_id}")

    def junit(self, job_id: int) -> str:
        response = self._call("GET", f"/jobs/{job_id}/junit/")
        if not response.ok:
            raise BbvError(f"JUnit of job {job_id}: LAVA server {self.server.url} answered "
                           f"{response.status_code}")
        return response.text

    def logs(self, job_id: int, start: int = 0) -> str:
        """The job's log from line `start` on (empty before the worker sent any)."""
        response = self._call("GET", f"/jobs/{job_id}/logs/", params={"start": start})
        return response.text if response.ok else ""

    def device(self, name: str) -> dict:
        return self._json("GET", f"/devices/{name}/", f"device {name}")

    def device_types(self) -> list[str]:
        return [t["name"] for t in self._list("/devicetypes/", "device types")]

    def devices(self, device_type: str) -> list[dict]:
        return self._list("/devices/", f"devices of type {device_type}",
                          device_type=device_type)

    def tags(self) -> dict[int, str]:
        """Tag names by id: a device lists its tags by id (2023.01)."""
        return {t["id"]: str(t["name"]) for t in self._list("/tags/", "device tags")}

    def workers(self) -> list[dict]:
        return self._list("/workers/", "workers")


def _listing(path: str) -> bool:
    """A top-level listing such as /devicetypes/, not one object (/jobs/7/) or its parts."""
    return path.count("/") == 2


def _detail(response) -> str:
    """The server's own message: DRF's {"detail": ...}, LAVA's {"message": ...}, or the
    status text (never the HTML of an error page)."""
    try:
        data = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(data, dict):
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])
    return str(data)[:300]
