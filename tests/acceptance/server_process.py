"""Run the real ``uvm-reporting`` CLI and server as subprocesses, the way an operator does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).parent / "uvm-reporting")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UVM_REPORTING_")}
    env.update({"UVM_REPORTING_DATA_DIR": str(data_dir), **extra})
    return env


def run_cli(data_dir: Path, *args: str, **extra_env: str) -> dict[str, Any]:
    """Run an admin command with ``--json``; return its one JSON object."""
    completed = subprocess.run([CLI, *args, "--json"], env=cli_env(data_dir, **extra_env), capture_output=True,
                               text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr + completed.stdout
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


@contextmanager
def running_server(data_dir: Path, *args: str, port: int | None = None, **extra_env: str
                   ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``uvm-reporting <args or serve>`` on a free port; yield its base URL; stop it."""
    port = port or free_port()
    command = [CLI, *(args or ("serve",)), "--port", str(port)]
    log = (data_dir.parent / f"server-{port}.log").open("w")
    process = subprocess.Popen(command, env=cli_env(data_dir, **extra_env), stdout=log, stderr=subprocess.STDOUT,
                               text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url, process, log.name)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_until_healthy(base_url: str, process: subprocess.Popen[str], log_name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{Path(log_name).read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError(f"server did not answer /healthz within 60s:\n{Path(log_name).read_text()}")
