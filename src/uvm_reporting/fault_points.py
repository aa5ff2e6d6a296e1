"""Named points in a run's life where a test can pause or kill a process, slow it, or fail a write:

* ``claim``: a worker claimed the run;
* ``query``: a batch of the report's rows was read by the worker's own thread (mid-query; a
  large export reads in an export process instead);
* ``batch``: in an export process, a batch of rows was read and counted in the run's progress,
  before it is written;
* ``write``: the run's file is open, no row written yet;
* ``write_batch``: bytes are about to go into the run's file in our storage folder (mid-write);
* ``upload``: a part of a multipart upload reached S3, more may follow (mid-upload);
* ``complete``: the file is published, the outcome not yet recorded.

Off unless ``UVM_REPORTING_FAULT_POINTS`` is set (read once, at import): then ``reached`` is
one test of an empty dict. The variable holds ``point=action`` pairs separated by ``;``:

* ``write=pause:/tmp/x/gate``: the first time ``write`` is reached, create ``/tmp/x/gate.reached``
  and wait until ``/tmp/x/gate.release`` exists; later passes go on at once. A test waits for
  the first file, does what it must while the run is held there, then creates the second.
* ``claim=kill``: SIGKILL this process the first time ``claim`` is reached; ``query=kill@3``:
  the third time (a test picks the point and the count from a seeded random generator).
* ``write_batch=enospc``: the first time, raise ``OSError(ENOSPC)`` as a full disk does.
* ``batch=delay:0.2``: sleep 0.2 seconds every time ``batch`` is reached (a slow export).

For tests only: an operator never sets it. Processes a worker starts inherit it.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "UVM_REPORTING_FAULT_POINTS"
POINTS = ("claim", "query", "batch", "write", "write_batch", "upload", "complete")
_ACTION = re.compile(r"kill(@[1-9][0-9]*)?|enospc|pause:.+|delay:[0-9]+(\.[0-9]+)?")
_POLL_SECONDS = 0.01


def _parse(spec: str) -> dict[str, str]:
    actions: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        point, _, action = item.partition("=")
        if point not in POINTS or not _ACTION.fullmatch(action):
            raise ValueError(
                f"{ENVIRONMENT_VARIABLE}: {item!r} is not <{'|'.join(POINTS)}>=kill[@N], =enospc, "
                "=pause:<path> or =delay:<seconds>"
            )
        actions[point] = action
    return actions


_actions = _parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))
_passes: dict[str, int] = {}
_lock = threading.Lock()


def configure(spec: str) -> None:
    """Replace the faults asked for (a process forked by a test, which read the variable before)."""
    global _actions  # noqa: PLW0603 - the module's one setting, read on every pass
    parsed = _parse(spec)
    with _lock:
        _passes.clear()
        _actions = parsed


def reached(point: str) -> None:
    """Called by the code at ``point``; does nothing unless a test asked for a fault there."""
    if _actions:
        _act(point)


def _act(point: str) -> None:
    action = _actions.get(point)
    if action is None:
        return
    if action.startswith("delay:"):
        time.sleep(float(action.removeprefix("delay:")))
        return
    with _lock:
        count = _passes[point] = _passes.get(point, 0) + 1
    kind, _, argument = action.partition("@") if action.startswith("kill") else action.partition(":")
    if count != (int(argument) if kind == "kill" and argument else 1):
        return
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    gate = Path(argument)
    gate.with_name(gate.name + ".reached").write_text(f"{os.getpid()}\n")
    release = gate.with_name(gate.name + ".release")
    while not release.exists():
        time.sleep(_POLL_SECONDS)
