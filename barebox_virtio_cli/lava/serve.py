"""bbv's own HTTP server for the images its LAVA jobs deploy (`bbv lava submit --serve
HOST:PORT`): only the files added, each under /N/NAME (two targets' images may share a name),
from a thread, for as long as the jobs run."""

from __future__ import annotations

import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util.ports import bind_error, in_use
from barebox_virtio_cli.util.sockets import bracket, parse_host_port

ANY = ("", "0.0.0.0", "::")


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT ([V6]:PORT; :PORT is every address) as --serve takes it."""
    endpoint = parse_host_port(text, text, "--serve",
                               "HOST:PORT, an address the LAVA workers reach")
    return endpoint.host or "0.0.0.0", endpoint.port


def check_free(host: str, port: int) -> None:
    """Refuse up front a port this host cannot listen on."""
    exc = bind_error(host, port)
    if exc is None:
        return
    why = "is in use" if in_use(exc) else f"cannot be used ({exc.strerror or exc})"
    raise UsageError(f"--serve {host}:{port}: the port {why}; pick another one")


class FileServer:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.files: dict[str, Path] = {}  # "/1/barebox-dt-2nd.img" -> file
        self._routes: dict[Path, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self.requests: list[str] = []  # paths served, in order

    @property
    def base(self) -> str:
        return f"http://{bracket(socket.getfqdn() if self.host in ANY else self.host)}:" \
               f"{self.port}"

    def url(self, path: Path) -> str:
        """The URL the workers fetch the file from (the same file: the same URL)."""
        path = path.resolve()
        if path not in self._routes:
            route = f"/{len(self._routes) + 1}/{path.name}"
            self._routes[path] = route
            self.files[route] = path
        return self.base + self._routes[path]

    def start(self) -> None:
        files, served = self.files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802 - http.server's names
                self._send(body=False)

            def do_GET(self):  # noqa: N802
                self._send(body=True)

            def _send(self, body: bool) -> None:
                path = files.get(self.path.split("?", 1)[0])
                if path is None or not path.is_file():
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                if body:
                    served.append(self.path)
                    with path.open("rb") as fh:
                        shutil.copyfileobj(fh, self.wfile)

            def log_message(self, *args) -> None:
                pass

        server_class = ThreadingHTTPServer
        if ":" in self.host:
            server_class = type("V6Server", (ThreadingHTTPServer,),
                                {"address_family": socket.AF_INET6})
        try:
            self._httpd = server_class((self.host, self.port), Handler)
        except OSError as exc:
            raise UsageError(f"--serve {self.host}:{self.port}: {exc.strerror or exc}") \
                from None
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="bbv-serve",
                         daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
