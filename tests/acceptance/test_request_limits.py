"""Body limits and log lines against the real server, over raw sockets: what a hostile client
can make ``serve`` read, and write into its log."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.cli import running_server
from tests.support.waiting import wait_for

EIGHT_MIB = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One server (no workers), and the file its log goes to."""
    data_dir = tmp_path_factory.mktemp("limits-server") / "var"
    with running_server(data_dir, "serve", "--no-workers") as (base_url, _):
        port = urlsplit(base_url).port
        yield base_url, data_dir.parent / f"server-{port}.log"


def connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    return socket.create_connection((address.hostname, address.port), timeout=15)


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = connection.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_an_8_mib_body_without_a_token_is_refused_before_it_is_sent(server: tuple[str, Path]) -> None:
    base_url, _ = server
    with connect(base_url) as connection:
        # Only the headers: a server that waits for the body never answers (the read times out).
        connection.sendall(
            b"POST /api/graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % EIGHT_MIB
        )
        status, headers, body = read_response(connection)
    assert status == 413
    error = json.loads(body)["errors"][0]
    assert error["extensions"] == {"code": "REQUEST_TOO_LARGE", "requestId": headers["x-request-id"]}


def test_a_chunked_body_is_refused_once_it_passes_the_limit(server: tuple[str, Path]) -> None:
    base_url, _ = server
    chunk = b"x" * 1024
    with connect(base_url) as connection:
        connection.sendall(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # 16 KiB, over the token endpoint's 4 KiB, and never finished: a server that reads the
        # whole body before it looks at it never answers (the read times out).
        connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 16)
        status, headers, body = read_response(connection)
    assert status == 413, body
    assert json.loads(body) == {
        "error": "request_too_large",
        "message": "The request body is larger than 4096 bytes, the limit of this endpoint.",
        "requestId": headers["x-request-id"],
    }


def test_a_path_cannot_forge_a_log_line(server: tuple[str, Path]) -> None:
    base_url, log_file = server
    with connect(base_url) as connection:
        connection.sendall(b"GET /downloads/x%0aFAKE-LOG-LINE%0d%1b[31m HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(connection)
    assert status == 403
    request_id = headers["x-request-id"]
    # The access-log line is written after the answer: wait for it before reading the file.
    line = wait_for(
        lambda: next((line for line in log_file.read_text().splitlines() if request_id in line), None),
        what="the access-log line of the request",
    )
    assert "/downloads/x\\nFAKE-LOG-LINE\\r\\x1b[31m" in line
    assert not any(line.startswith("FAKE-LOG-LINE") for line in log_file.read_text().splitlines())
    assert "\x1b" not in log_file.read_text()
