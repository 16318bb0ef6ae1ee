"""Downloads, for every caller (toolchains, barebox releases): HTTP GET with retries, progress
through a callback (util/status.transfer draws the bar), sha256 of files and of checksum lists,
and archive extraction that refuses any member that would land or link outside the
destination."""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.util.status import Transferred
from barebox_virtio_cli.util.validate import url_problem

ATTEMPTS = 4
BACKOFF = 0.5  # seconds, doubled after each failed attempt
RETRY_STATUS = (500, 502, 503, 504)
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")



class NotFound(BbvError):
    """The server answered 404."""

    def __init__(self, url: str, hint: str = ""):
        super().__init__(f"not found: {url}" + (f" ({hint})" if hint else ""))
        self.url = url


class Downloader:
    """GET through a requests session whose adapter retries with exponential backoff (urllib3's
    Retry: refused or dropped connections, timeouts, 5xx answers); a body cut off mid-transfer,
    which Retry does not cover once the answer has begun, is fetched again as a whole. Streams
    to a file while hashing it. `hint` says what to do when the server cannot be reached,
    `not_found` what a 404 probably means."""

    def __init__(self, hint: str, not_found: str = "", attempts: int = ATTEMPTS,
                 backoff: float = BACKOFF, timeout: float = 30):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(total=attempts - 1, backoff_factor=backoff, status_forcelist=RETRY_STATUS,
                      allowed_methods=frozenset({"GET"}), raise_on_status=False)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.hint, self.not_found = hint, not_found

    def text(self, url: str) -> str:
        return self._failing_clearly(url, lambda: self._get(url).text)

    def to_file(self, url: str, path: Path, progress: Transferred,
                sha256: str | None = None) -> str:
        """Download url into path; returns the sha256 of what was written. With sha256 given,
        a download that does not match it is deleted and refused."""
        got = self._failing_clearly(url, lambda: self._restarting(url, path, progress))
        if sha256 is not None and got != sha256.lower():
            path.unlink(missing_ok=True)
            raise BbvError(f"checksum mismatch for {os.path.basename(url)}: expected {sha256}, "
                           f"got {got}; the download was deleted")
        return got

    def _get(self, url: str, stream: bool = False):
        response = self.session.get(url, stream=stream, timeout=self.timeout)
        if response.status_code == 404:
            response.close()
            raise NotFound(url, self.not_found)
        response.raise_for_status()
        return response

    def _restarting(self, url: str, path: Path, progress: Transferred) -> str:
        """The transfer again from the start after an interruption, up to attempts times."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return self._stream(url, path, progress)
            except _Interrupted as exc:
                if attempt == self.attempts:
                    raise BbvError(f"download of {url} failed after {self.attempts} attempts: "
                                   f"transfer interrupted ({exc}); {self.hint}") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _stream(self, url: str, path: Path, progress: Transferred) -> str:
        import requests

        digest = hashlib.sha256()
        with self._get(url, stream=True) as response, path.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            try:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(done, total)
            except requests.RequestException as exc:
                raise _Interrupted(f"{type(exc).__name__} after {done} bytes") from exc
            if total and done != total:
                raise _Interrupted(f"got {done} of {total} bytes")
        return digest.hexdigest()

    def _failing_clearly(self, url: str, action: Callable[[], str]) -> str:
        """One line for what the retries could not overcome."""
        import requests

        problem = url_problem(url)
        if problem:
            raise BbvError(f"{url} is not a URL bbv can download from (it {problem}); "
                           f"{self.hint}")
        try:
            return action()
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise BbvError(f"{url} is not a URL bbv can download from ({exc}); "
                           f"{self.hint}") from None
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code and code < 500:
                raise BbvError(f"{url}: HTTP {code}") from exc
            last = f"HTTP {code or '?'}"
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = _reason(exc)
        raise BbvError(f"download of {url} failed after {self.attempts} attempts: {last}; "
                       f"{self.hint}")


class Unreachable(BbvError):
    """No answer from a server: refused, unknown name, timed out (`reason` says which)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


class ApiSession:
    """A requests session for a server's HTTP API (LAVA's REST API): headers set once (a token
    in them stays out of every message), a timeout, GETs retried as downloads are, except a
    request the server took and did not answer within the timeout: a hung server hangs again,
    and retrying would make the wait for it `attempts` times as long. A server that cannot be
    reached raises Unreachable; every answer, error statuses included, is returned as it
    came."""

    def __init__(self, headers: dict[str, str], timeout: float = 30,
                 attempts: int = ATTEMPTS, backoff: float = BACKOFF):
        import requests
        from requests.adapters import HTTPAdapter

        retry = _retry_unless_hung()(
            total=attempts - 1, backoff_factor=backoff, status_forcelist=RETRY_STATUS,
            allowed_methods=frozenset({"GET"}), raise_on_status=False)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.session.headers.update(headers)
        self.timeout = timeout
        self.single: requests.Session | None = None  # no retries: for a caller with a deadline

    def request(self, method: str, url: str, timeout: float | None = None, once: bool = False,
                **kwargs):
        """The requests Response; timeout: the attempt's (default: the session's); once: one
        attempt, not retried."""
        import requests

        session = self.session
        if once:
            if self.single is None:
                self.single = requests.Session()
                self.single.headers.update(self.session.headers)
            session = self.single
        try:
            return session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise Unreachable(url, _reason(exc)) from None

    def close(self) -> None:
        self.session.close()
        if self.single is not None:
            self.single.close()


def _retry_unless_hung() -> type:
    """urllib3's Retry that gives up at once on a read timeout (the server took the request
    and did not answer in time)."""
    from urllib3.exceptions import ReadTimeoutError
    from urllib3.util.retry import Retry

    class RetryUnlessHung(Retry):
        def increment(self, *args, error: Exception | None = None, **kwargs):
            if isinstance(error, ReadTimeoutError):
                raise error
            return super().increment(*args, error=error, **kwargs)

    return RetryUnlessHung


class _Interrupted(Exception):
    pass


def _reason(exc: Exception) -> str:
    text = str(exc)
    tls = re.search(r"\[SSL: [A-Z_]+\] (.+?) \(_ssl\.c", text)
    if tls:  # e.g. https:// to a plain HTTP port, or a certificate of a private CA
        hint = " (a private CA: REQUESTS_CA_BUNDLE=CA.pem)" if "verify failed" in text else ""
        return f"TLS: {tls[1]}{hint}"
    for known in ("Connection refused", "Name or service not known", "timed out",
                  "Temporary failure in name resolution", "Network is unreachable",
                  "Connection reset by peer", "Remote end closed connection without response"):
        if known in text:
            return known
    return type(exc).__name__


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_sums(text: str, name: str) -> str | None:
    """The sha256 for name in a sha256sum list (sha256sums, .asc with its PGP armour lines,
    FILE.sha256); None when it lists none."""
    for line in text.splitlines():
        match = _SUM_LINE.match(line.strip())
        if match and os.path.basename(match.group(2)) == name:
            return match.group(1).lower()
    return None


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def check_members(members: list[tarfile.TarInfo], dest: Path) -> None:
    """Refuse the whole archive if any member would land or link outside dest, or is
    neither a file, a directory nor a link."""
    root = os.path.abspath(dest)
    for m in members:
        where = os.path.normpath(os.path.join(root, m.name))
        if os.path.isabs(m.name) or not _inside(root, where):
            raise BbvError(f"unsafe archive: member {m.name!r} would be written outside the "
                           "destination directory")
        if m.issym() or m.islnk():
            base = os.path.dirname(where) if m.issym() else root
            link = os.path.normpath(os.path.join(base, m.linkname))
            if os.path.isabs(m.linkname) or not _inside(root, link):
                raise BbvError(f"unsafe archive: link {m.name!r} -> {m.linkname!r} points "
                               "outside the destination directory")
        elif not (m.isfile() or m.isdir()):
            raise BbvError(f"unsafe archive: member {m.name!r} is a device or fifo")


def extract(archive: Path, dest: Path) -> None:
    """Unpack a tar archive (any compression tarfile reads) into dest, every member checked
    first: a bad one refuses the whole archive before anything is written."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            check_members(members, dest)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BbvError(f"cannot unpack {archive.name}: {exc}") from exc
