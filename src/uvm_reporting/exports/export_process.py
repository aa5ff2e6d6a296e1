"""The export process: one large export in a Python process of its own.

The worker thread that claimed the run starts ``python -m uvm_reporting.exports.export_process``,
writes the job (exports/export_job.py) to its standard input and copies what comes out of its
standard output into the run's destination, which counts, hashes and publishes it as before
(our storage or the customer's S3 bucket). The outcome (rows, or a typed error) comes back on
a pipe of its own. Why a process:

* SQLite through ADBC's driver needs it (exports/arrow_sources.py: a second SQLite library in
  the worker would break SQLite's locks);
* the export's CPU work no longer shares the GIL with the API's status polls and the worker's
  other threads, and its memory goes back to the system when it ends.

The export process ignores SIGINT and SIGTERM (the worker decides when to give up: it lets runs
finish for its grace period, then hands them back) and is killed with SIGKILL when the worker
dies; a write to a worker that is gone ends it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from uvm_reporting.exports.export_job import ExportJob
from uvm_reporting.exports.formats.common import BinaryWriter

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
_PIPE_BYTES = 1 << 20  # Linux lets an unprivileged process grow a pipe to 1 MiB
_F_SETPIPE_SZ = 1031
_PR_SET_PDEATHSIG = 1


class ExportProcessFailed(Exception):
    """The export process reported an error (or died); ``code`` is a RunErrorCode value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    rows: int
    peak_rss_bytes: int
    seconds: float


def run_export_process(job: ExportJob, out: BinaryWriter) -> ExportOutcome:
    """Run ``job`` in an export process, copying its bytes to ``out`` as they come."""
    started = time.monotonic()
    status_read, status_write = os.pipe()
    try:
        process = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
            [sys.executable, "-m", "uvm_reporting.exports.export_process", str(status_write), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(status_write,), close_fds=True)
    finally:
        os.close(status_write)
    status = b""
    finished = False
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        with contextlib.suppress(OSError):
            fcntl.fcntl(process.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        process.stdin.write(job.to_json())
        process.stdin.close()
        stdout = process.stdout.fileno()
        while block := os.read(stdout, COPY_BLOCK):
            out.write(block)
        with os.fdopen(status_read, "rb") as status_pipe:
            status_read = -1
            status = status_pipe.read()
        finished = True
    finally:
        if status_read >= 0:
            os.close(status_read)
        if not finished:
            with contextlib.suppress(OSError):
                process.kill()  # we stopped reading (an error of ours): it must not linger
        exit_code, peak_rss = _reap(process)
        if process.stdout is not None:
            process.stdout.close()
    return _outcome(status, exit_code, peak_rss, time.monotonic() - started)


def _reap(process: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Wait for the process; its exit code and peak resident set size (bytes)."""
    _, wait_status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    return process.returncode, usage.ru_maxrss * 1024


def _outcome(status: bytes, exit_code: int, peak_rss: int, seconds: float) -> ExportOutcome:
    try:
        report: dict[str, Any] = json.loads(status) if status else {}
    except json.JSONDecodeError:
        report = {}
    if "rows" in report and exit_code == 0:
        return ExportOutcome(int(report["rows"]), peak_rss, seconds)
    error = report.get("error")
    if isinstance(error, dict):
        raise ExportProcessFailed(str(error.get("code", "INTERNAL")), str(error.get("message", "")))
    how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
    raise ExportProcessFailed("INTERNAL", f"The export process {how} before it finished; the operator "
                              "log has the details.")


# --- inside the export process ----------------------------------------------------------------


def main(argv: list[str]) -> int:
    status_fd, worker_pid = int(argv[1]), int(argv[2])
    _follow_the_worker(worker_pid)
    job = ExportJob.from_json(sys.stdin.buffer.read())
    _return_freed_memory()
    logging.basicConfig(level=job.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from uvm_reporting.exports.arrow_pipeline import write_job  # noqa: PLC0415 - after the setup above

        with io.open(sys.stdout.fileno(), "wb", buffering=COPY_BLOCK, closefd=False) as out:  # noqa: UP020
            rows = write_job(job, out)
    except BrokenPipeError:
        return 1  # the worker is gone: nobody to tell
    except Exception as error:
        code, message = _describe(error)
        log.log(logging.ERROR if code == "INTERNAL" else logging.WARNING, "export failed: %s", error,
                exc_info=code == "INTERNAL")
        _report(status_fd, {"error": {"code": code, "message": message}})
        return 1
    _report(status_fd, {"rows": rows})
    return 0


def _follow_the_worker(worker_pid: int) -> None:
    # The worker decides when an export stops; a terminal's Ctrl-C or a service manager's
    # SIGTERM reaches the whole process group, and the worker's grace period handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker_pid:  # the worker died before prctl took effect
        sys.exit(1)


def _return_freed_memory() -> None:
    """Arrow allocates through the C library's malloc. Its default (mimalloc) keeps freed
    memory for reuse, which measured 40 MB more peak memory for a 1M-row export; jemalloc
    returning it at once cost page faults and a fifth more time (bench/RESULTS.md)."""
    import pyarrow as pa  # noqa: PLC0415

    pa.set_memory_pool(pa.system_memory_pool())


def _describe(error: Exception) -> tuple[str, str]:
    """The run's error code and a message a person can act on (internals go to the log)."""
    if _is_database_error(error):
        return "QUERY_FAILED", ("The report's query failed in the database. Check the report definition; "
                                "the operator log has the details.")
    if isinstance(error, OSError):
        return "STORAGE_FAILED", f"Writing the result failed: {error.strerror or error}."
    return "INTERNAL", "The export failed unexpectedly; the operator log has the details."


def _is_database_error(error: Exception) -> bool:
    try:
        from adbc_driver_manager import Error as AdbcError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(error, AdbcError)


def _report(fd: int, outcome: dict[str, Any]) -> None:
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as status:
        status.write(json.dumps(outcome).encode("utf-8"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
