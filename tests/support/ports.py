"""Free TCP ports on the loopback interface, for the servers the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on now (the kernel's choice, so parallel test workers do not collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
