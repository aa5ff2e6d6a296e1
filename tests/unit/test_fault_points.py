"""Fault points: off without the variable, a pause held until released, a kill (at the Nth pass),
an injected full disk, refused specs."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from uvm_reporting import fault_points


def run_python(code: str, spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != fault_points.ENVIRONMENT_VARIABLE}
    if spec is not None:
        env[fault_points.ENVIRONMENT_VARIABLE] = spec
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


REACH_ALL = "from uvm_reporting import fault_points as f\nfor p in f.POINTS: f.reached(p)\nprint('went on')"


def test_without_the_variable_every_point_goes_on() -> None:
    completed = run_python(REACH_ALL, None)
    assert (completed.returncode, completed.stdout) == (0, "went on\n"), completed.stderr


def test_kill_ends_the_process_at_its_point() -> None:
    completed = run_python(REACH_ALL, "complete=kill")
    assert completed.returncode == -signal.SIGKILL
    assert completed.stdout == ""


def test_a_pause_holds_until_released_then_later_passes_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setattr(fault_points, "_actions", fault_points._parse(f"write=pause:{gate}"))
    monkeypatch.setattr(fault_points, "_passes", {})
    passed = threading.Event()

    def export() -> None:
        fault_points.reached("claim")  # no fault asked there
        fault_points.reached("write")
        passed.set()

    thread = threading.Thread(target=export)
    thread.start()
    wait_for((tmp_path / "gate.reached").exists, what="the pause")
    assert not passed.is_set()
    (tmp_path / "gate.release").touch()
    thread.join(30)
    assert passed.is_set()
    assert (tmp_path / "gate.reached").read_text() == f"{os.getpid()}\n"
    fault_points.reached("write")  # once released, the point no longer holds anyone


def test_kill_at_a_count_lets_the_earlier_passes_go_on() -> None:
    code = (
        "from uvm_reporting import fault_points as f\n"
        "for n in range(5):\n    print(n, flush=True)\n    f.reached('query')"
    )
    completed = run_python(code, "query=kill@3")
    assert completed.returncode == -signal.SIGKILL
    assert completed.stdout == "0\n1\n2\n"


def test_enospc_fails_the_first_pass_as_a_full_disk_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fault_points, "_actions", {})
    fault_points.configure("write_batch=enospc")
    try:
        with pytest.raises(OSError, match="No space left on device") as raised:
            fault_points.reached("write_batch")
        assert raised.value.errno == errno.ENOSPC
        fault_points.reached("write_batch")  # later passes go on
    finally:
        fault_points.configure("")


def test_a_delay_holds_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fault_points, "_actions", fault_points._parse("batch=delay:0.05"))
    monkeypatch.setattr(fault_points, "_passes", {})
    began = time.monotonic()
    for _ in range(3):
        fault_points.reached("batch")
    assert time.monotonic() - began >= 0.15
    fault_points.reached("write")  # no fault asked there


@pytest.mark.parametrize(
    "spec", ["write", "nowhere=kill", "write=stop", "write=pause", "claim=kill@0", "claim=kill@x", "batch=delay:soon"]
)
def test_a_spec_it_cannot_follow_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="UVM_REPORTING_FAULT_POINTS"):
        fault_points._parse(spec)
