"""Which LAVA server bbv talks to, and with which token: as LAVA users keep them, in lavacli's
identities file ($XDG_CONFIG_HOME/lavacli.yaml, `lavacli identities add`), or given as --url and
--token. lavacli stores the XML-RPC endpoint (https://HOST/RPC2); bbv uses the REST API beside
it. The token is kept out of every repr and message."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util.validate import url_problem

DEFAULT_IDENTITY = "default"  # lavacli's
_API_TAILS = ("/RPC2", "/api/v0.2", "/api")


@dataclass(frozen=True)
class Server:
    url: str  # base URL, no trailing slash: URL/api/v0.2/, URL/scheduler/job/ID
    token: str | None = field(default=None, repr=False)
    source: str = ""  # where it came from, for messages: "identity 'lab' (FILE)", "--url"

    def job_url(self, job_id: int) -> str:
        return f"{self.url}/scheduler/job/{job_id}"


def base_url(uri: str, where: str) -> str:
    """The server's base URL from a lavacli uri or a plain one; user:password@ dropped."""
    problem = url_problem(uri)  # the one URL check of bbv: ports, spaces, brackets
    if problem:
        raise UsageError(f"{where}: {uri!r} is not an http:// or https:// URL of a LAVA "
                         f"server: it {problem}")
    parts = urlsplit(uri.strip())
    path = parts.path.rstrip("/")
    for tail in _API_TAILS:
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def parse_identities(text: str, path: str) -> dict[str, dict]:
    """lavacli.yaml: a mapping of identity name to {uri, username, token, proxy, ...}."""
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{where}; fix it or give --url and --token") \
            from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"{path}: expected lavacli's format, a mapping of identity names to "
                         "uri/username/token")
    return {str(k): v for k, v in data.items()}


def resolve(identities: dict[str, dict] | None, path: str, identity: str | None,
            url: str | None, token: str | None) -> Server:
    """--url (with --token) wins; else the identity (lavacli's 'default' when none is named),
    its token replaced by --token if given."""
    if url:
        if identity:
            raise UsageError("--url and --identity both name the server; give one")
        return Server(base_url(url, "--url"), token or None, "--url")
    name = identity or DEFAULT_IDENTITY
    entry = (identities or {}).get(name)
    if entry is None:
        known = ", ".join(sorted(identities or {})) or "none"
        if identities is None and identity is None:
            raise UsageError(f"no LAVA server given: pass --url URL and --token TOKEN, or add "
                             f"an identity with 'lavacli identities add' ({path})")
        raise UsageError(f"no identity '{name}' in {path} (identities: {known}); add it with "
                         "'lavacli identities add' or pass --url and --token")
    if not entry.get("uri"):
        raise UsageError(f"identity '{name}' in {path} has no uri")
    where = f"identity '{name}' ({path})"
    own = entry.get("token")
    return Server(base_url(str(entry["uri"]), where), token or (str(own) if own else None),
                  where)
