"""A small HTTP/1.1 load generator: C keep-alive connections send one prebuilt request until N
responses have arrived, then print one JSON line (requests, errors, start and end times).

Run by status_throughput.py as a separate process (so the server under test has the other
core to itself), when ``wrk`` is not installed:

    python bench/_load.py --port P --request-file F --requests N --connections C --start-at T

The request file holds the raw request bytes (request line, headers, body). Responses must
carry Content-Length (Starlette's JSON responses do); a response that is not 200, or whose
body holds ``"errors"``, counts as an error. ``--start-at`` is a ``time.monotonic()`` value
(one clock for every process on Linux), so several load processes start together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Tally:
    remaining: int
    done: int = 0
    errors: int = 0
    first_error: str = ""


async def _connection(port: int, request: bytes, tally: Tally, start_at: float, deadline: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        while tally.remaining > 0 and time.monotonic() < deadline:
            tally.remaining -= 1
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                raise RuntimeError(f"a response without Content-Length: {head[:200]!r}")
            body = await reader.readexactly(int(match.group(1)))
            tally.done += 1
            if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in body:
                tally.errors += 1
                tally.first_error = tally.first_error or (head.split(b"\r\n", 1)[0] + b" " + body[:300]).decode(
                    errors="replace"
                )
    finally:
        writer.close()


async def drive(
    port: int, request: bytes, *, requests: int, connections: int, start_at: float, timeout: float
) -> dict[str, object]:
    tally = Tally(remaining=requests)
    deadline = start_at + timeout
    tasks = [asyncio.create_task(_connection(port, request, tally, start_at, deadline)) for _ in range(connections)]
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    started = time.monotonic()
    await asyncio.gather(*tasks)
    finished = time.monotonic()
    return {
        "requests": tally.done,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "started": started,
        "finished": finished,
        "timed_out": tally.remaining > 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request-file", type=Path, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--start-at", type=float, default=0.0, help="time.monotonic() value to start at (default: now)")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop sending after this many seconds")
    args = parser.parse_args()
    start_at = args.start_at or time.monotonic()
    result = asyncio.run(
        drive(
            args.port,
            args.request_file.read_bytes(),
            requests=args.requests,
            connections=args.connections,
            start_at=start_at,
            timeout=args.timeout,
        )
    )
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
