"""A tiny HTTP proxy in front of the moto server that answers ``503 SlowDown`` to the first N
writes (PUT and POST: object puts, multipart create/part/complete) and forwards everything
else: S3 throttling as a worker meets it, on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class S3FaultProxy:
    def __init__(self, target_url: str, failing_writes: int) -> None:
        self.target = urlsplit(target_url)
        self.failing_writes = failing_writes
        self.refused = 0
        self._lock = threading.Lock()

    def refuse(self, method: str) -> bool:
        """Whether this request gets a 503 (one of the first ``failing_writes`` writes)."""
        with self._lock:
            if method in ("PUT", "POST") and self.refused < self.failing_writes:
                self.refused += 1
                return True
            return False


def _handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if proxy.refuse(self.command):
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                self.wfile.write(SLOW_DOWN)
                return
            upstream = http.client.HTTPConnection(proxy.target.hostname or "127.0.0.1", proxy.target.port, timeout=30)
            try:
                headers = {name: value for name, value in self.headers.items() if name.lower() != "expect"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                self.send_response(answer.status)
                head = self.command == "HEAD"  # no body, but the object's length
                for name, value in answer.getheaders():
                    dropped = ("transfer-encoding", "connection", "date", "server") + (
                        () if head else ("content-length",)
                    )
                    if name.lower() not in dropped:
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            finally:
                upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests assert on outcomes

    return Handler


@contextmanager
def s3_fault_proxy(target_url: str, failing_writes: int) -> Iterator[tuple[str, S3FaultProxy]]:
    """``(url, proxy)`` of a proxy to ``target_url`` that refuses the first ``failing_writes`` writes."""
    proxy = S3FaultProxy(target_url, failing_writes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
