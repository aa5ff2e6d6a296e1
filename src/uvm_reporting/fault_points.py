"""Named points in a run's life where a test can pause or kill a process: ``claim`` (a worker
claimed the run), ``write`` (the run's file is open, no row written yet), ``batch`` (in an export
process: a batch of rows was read and counted in the run's progress, before it is written) and
``complete`` (the file is published, the outcome not yet recorded).

Off unless ``UVM_REPORTING_FAULT_POINTS`` is set (read once, at import): then ``reached`` is
one test of an empty dict. The variable holds ``point=action`` pairs separated by ``;``:

* ``write=pause:/tmp/x/gate``: the first time ``write`` is reached, create ``/tmp/x/gate.reached``
  and wait until ``/tmp/x/gate.release`` exists; later passes go on at once. A test waits for
  the first file, does what it must while the run is held there, then creates the second.
* ``claim=kill``: SIGKILL this process the first time ``claim`` is reached.
* ``batch=delay:0.2``: sleep 0.2 seconds every time ``batch`` is reached (a slow export).

For tests only: an operator never sets it. Processes a worker starts inherit it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "UVM_REPORTING_FAULT_POINTS"
POINTS = ("claim", "write", "batch", "complete")
_POLL_SECONDS = 0.01


def _parse(spec: str) -> dict[str, str]:
    actions: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        point, _, action = item.partition("=")
        if point not in POINTS or not (action == "kill" or action.startswith(("pause:", "delay:"))):
            raise ValueError(
                f"{ENVIRONMENT_VARIABLE}: {item!r} is not <{'|'.join(POINTS)}>=kill, =pause:<path> or =delay:<seconds>"
            )
        if action.startswith("delay:"):
            try:
                float(action.removeprefix("delay:"))
            except ValueError:
                raise ValueError(f"{ENVIRONMENT_VARIABLE}: {item!r}: a delay is a number of seconds") from None
        actions[point] = action
    return actions


_actions = _parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))
_passed: set[str] = set()
_lock = threading.Lock()


def reached(point: str) -> None:
    """Called by the code at ``point``; does nothing unless a test asked for a fault there."""
    if _actions:
        _act(point)


def _act(point: str) -> None:
    action = _actions.get(point)
    if action is not None and action.startswith("delay:"):
        time.sleep(float(action.removeprefix("delay:")))
        return
    with _lock:
        if action is None or point in _passed:
            return
        _passed.add(point)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    gate = Path(action.removeprefix("pause:"))
    gate.with_name(gate.name + ".reached").write_text(f"{os.getpid()}\n")
    release = gate.with_name(gate.name + ".release")
    while not release.exists():
        time.sleep(_POLL_SECONDS)
