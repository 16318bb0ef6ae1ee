"""One real HTTP server on loopback for the download tests: it serves `files` (URL path ->
bytes), records every path asked for, and misbehaves on request: a number of 503 answers,
bodies cut off half-way, a body held half-sent until close(), or no answer at all (a hung
server) after a number of answers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}  # path -> how many more times to cut it short
        self.unavailable: dict[str, int] = {}  # path -> how many more times to answer 503
        self.stall: set[str] = set()  # paths sent half-way, then held until close()
        self.answers: dict[str, int] = {}  # path -> answers before it hangs until close()
        self.released = threading.Event()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.answers.get(self.path, 1) <= 0:
                    server.released.wait(120)  # read the request, never answer it
                    return
                if self.path in server.answers:
                    server.answers[self.path] -= 1
                if server.unavailable.get(self.path, 0) > 0:
                    server.unavailable[self.path] -= 1
                    self.send_error(503)
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.path in server.stall:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    server.released.wait(60)
                    return
                if server.truncate.get(self.path, 0) > 0:
                    server.truncate[self.path] -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
