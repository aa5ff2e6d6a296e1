"""Run the real ``uvm-reporting`` CLI and server as subprocesses, the way an operator does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.ports import free_port

CLI = str(Path(sys.executable).parent / "uvm-reporting")


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UVM_REPORTING_")}
    env.update({"UVM_REPORTING_DATA_DIR": str(data_dir), **extra})
    return env


def run_command(data_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run ``uvm-reporting <args>`` to its end; its exit code and output, unchecked."""
    return subprocess.run(
        [CLI, *args], env=cli_env(data_dir, **extra_env), capture_output=True, text=True, timeout=120, check=False
    )


def one_json_object(output: str) -> dict[str, Any]:
    """The one line of ``output``, a JSON object (what ``--json`` prints)."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def run_cli(data_dir: Path, *args: str, **extra_env: str) -> dict[str, Any]:
    """Run an admin command with ``--json``; return its one JSON object."""
    completed = subprocess.run(
        [CLI, *args, "--json"],
        env=cli_env(data_dir, **extra_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


@contextmanager
def running_server(
    data_dir: Path, *args: str, port: int | None = None, **extra_env: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``uvm-reporting <args or serve>`` on a free port; yield its base URL; stop it."""
    port = port or free_port()
    command = [CLI, *(args or ("serve",)), "--port", str(port)]
    log = (data_dir.parent / f"server-{port}.log").open("w")
    process = subprocess.Popen(
        command, env=cli_env(data_dir, **extra_env), stdout=log, stderr=subprocess.STDOUT, text=True
    )
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


@contextmanager
def cli_process(
    data_dir: Path, log_path: Path, *args: str, env: Mapping[str, str] | None = None, stop_timeout: float = 60.0
) -> Iterator[subprocess.Popen[str]]:
    """Run ``uvm-reporting <args>`` (a worker, a scheduler) in the background, its output in ``log_path``,
    with ``env`` added to the environment ``cli_env`` gives.

    At the end a process still running is stopped: SIGTERM, then SIGKILL after ``stop_timeout`` seconds.
    """
    log = log_path.open("w")
    process = subprocess.Popen(
        [CLI, *args],
        env=cli_env(data_dir, **(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()


def stop_process(process: subprocess.Popen[str], *, timeout: float) -> tuple[int | None, float]:
    """Send SIGTERM and wait up to ``timeout`` seconds: (exit code or None if still running, seconds taken)."""
    started = time.monotonic()
    process.terminate()
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - started


def stop_processes(processes: list[subprocess.Popen[str]], *, timeout: float) -> list[tuple[int | None, float]]:
    """``stop_process`` for several at once: SIGTERM to all, then wait for each."""
    started = time.monotonic()
    for process in processes:
        process.terminate()
    results: list[tuple[int | None, float]] = []
    for process in processes:
        try:
            code: int | None = process.wait(timeout=max(0.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        results.append((code, time.monotonic() - started))
    return results


def wait_for_log(
    log_path: Path, pattern: str, *, process: subprocess.Popen[str] | None = None, timeout: float = 60.0
) -> re.Match[str]:
    """Wait until ``log_path`` has a match of the regex ``pattern``; fail early if ``process`` exits."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text() if log_path.exists() else ""
        match = compiled.search(text)
        if match is not None:
            return match
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"{log_path.name}: the process exited with {process.returncode} before logging {pattern!r}:\n{text}"
            )
        if time.monotonic() >= deadline:
            raise AssertionError(f"{log_path.name}: no {pattern!r} within {timeout}s:\n{text}")
        time.sleep(0.05)
