"""The export process: one large export in a Python process of its own.

The worker thread that claimed the run starts ``python -m uvm_reporting.exports.export_process``,
writes the job (exports/export_job.py) to its standard input and copies what comes out of its
standard output into the run's destination, which counts, hashes and publishes it as before
(our storage or the customer's S3 bucket). The outcome (rows, or a typed error) comes back on
a pipe of its own; the rows read so far (the run's progress) on a third one, as 8-byte counts
written without blocking (dropped while the pipe is full: the next one says more). A cancelled
run's export process is killed (domain/run_control.py). Why a process:

* SQLite through ADBC's driver needs it (exports/sources/adbc.py: a second SQLite library in
  the worker would break SQLite's locks);
* the export's CPU work no longer shares the GIL with the API's status polls and the worker's
  other threads, and its memory goes back to the system when it ends.

The export process ignores SIGINT and SIGTERM (the worker decides when to give up: it lets runs
finish for its grace period, then hands them back) and is killed with SIGKILL when the worker
dies; a write to a worker that is gone ends it too. A worker keeps one export process started
ahead (``ExportProcesses``), so the next large export need not wait for one to load.
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
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.errors import RunErrorCode, UvmReportingError, run_failure
from uvm_reporting.exports.export_job import ExportJob
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.log_lines import configure_logging

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
_PIPE_BYTES = 1 << 20  # Linux lets an unprivileged process grow a pipe to 1 MiB
_F_SETPIPE_SZ = 1031
_PR_SET_PDEATHSIG = 1
_ROWS = struct.Struct("<q")  # a progress message: the rows read so far


class ExportProcessFailed(UvmReportingError):
    """The export process reported an error (or died), with the run error code it chose."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.run_error_code = RunErrorCode.__members__.get(code, RunErrorCode.INTERNAL)
        self.transient = transient


class ExportProcessGone(ExportProcessFailed):
    """The export process died before it wrote anything: a spare that died while it waited
    (or as it was given its job). Nothing reached the destination, so the job may run again."""

    def __init__(self, how: str) -> None:
        super().__init__(
            "INTERNAL", f"The export process {how} before it wrote anything; the operator log has the details."
        )


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    rows: int
    peak_rss_bytes: int
    seconds: float


@dataclass
class StartedProcess:
    """An export process that has started (and is loading its modules), waiting for its job."""

    process: subprocess.Popen[bytes]
    status_read: int
    progress_read: int = -1
    started_at: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return self.process.poll() is None

    def discard(self) -> None:
        """Kill and reap it unused (a spare nobody will take)."""
        if self.process.returncode is None:
            with contextlib.suppress(OSError):
                self.process.kill()
            _reap(self.process)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        os.close(self.status_read)
        if self.progress_read >= 0:
            os.close(self.progress_read)


def start_export_process() -> StartedProcess:
    """Start an export process; it loads its modules, then waits for a job on its stdin.

    The kernel ends it when the thread that started it ends (PR_SET_PDEATHSIG): start it from
    a thread that lives as long as the work (ExportProcesses has one)."""
    status_read, status_write = os.pipe()
    progress_read, progress_write = os.pipe()
    os.set_blocking(progress_read, False)
    try:
        process = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
            [
                sys.executable,
                "-m",
                "uvm_reporting.exports.export_process",
                str(status_write),
                str(os.getpid()),
                str(progress_write),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(status_write, progress_write),
            close_fds=True,
        )
    except BaseException:
        os.close(status_read)
        os.close(progress_read)
        raise
    finally:
        os.close(status_write)
        os.close(progress_write)
    assert process.stdout is not None
    with contextlib.suppress(OSError):
        fcntl.fcntl(process.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
    return StartedProcess(process, status_read, progress_read)


def run_export_process(
    job: ExportJob,
    out: BinaryWriter,
    *,
    started: StartedProcess | None = None,
    control: RunControl | None = None,
) -> ExportOutcome:
    """Run ``job`` in an export process (``started``, or a new one), copying its bytes to
    ``out`` as they come. With ``control``, the rows read so far are told to it, and a cancel
    kills the process (RunCancelled)."""
    began = time.monotonic()
    started = started or start_export_process()
    process, status_read, progress_read = started.process, started.status_read, started.progress_read
    stopping = contextlib.nullcontext() if control is None else _controlled(process, progress_read, control)
    status = b""
    finished = False
    copied = 0
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(job.to_json())
            process.stdin.close()
        except BrokenPipeError:
            pass  # it is gone: its exit status says how, below
        else:
            stdout = process.stdout.fileno()
            with stopping:
                while block := os.read(stdout, COPY_BLOCK):
                    out.write(block)
                    copied += len(block)
            if control is not None:
                control.check()  # killed for a cancel: its end is no failure
            with os.fdopen(status_read, "rb") as status_pipe:
                status_read = -1
                status = status_pipe.read()
        finished = True
    finally:
        if status_read >= 0:
            os.close(status_read)
        if progress_read >= 0:
            os.close(progress_read)
        if not finished:
            with contextlib.suppress(OSError):
                process.kill()  # we stopped reading (an error of ours): it must not linger
        exit_code, peak_rss = _reap(process)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    if not status and not copied and exit_code < 0:
        raise ExportProcessGone(_ended(exit_code))
    return _outcome(status, exit_code, peak_rss, time.monotonic() - began)


class ExportProcesses:
    """Runs jobs in export processes, with one started ahead once a first job has run: starting
    one (the interpreter, pyarrow, NumPy, the drivers) takes about half a second, which a spare
    that loaded them while idle takes off the next export's time. A spare idles at about
    90 MB; it is never kept by a worker that has had no large export.

    Every process is started by one thread that lives as long as this object: the kernel kills
    export processes when the thread that started them ends, and a worker thread that ends
    during a shutdown must not take another thread's export with it."""

    def __init__(self, *, keep_spare: bool = True) -> None:
        self._keep_spare = keep_spare
        self._starter: ThreadPoolExecutor | None = None  # made with the first export process
        self._spare: StartedProcess | None = None
        self._lock = threading.Lock()
        self._closed = False

    def run(self, job: ExportJob, out: BinaryWriter, control: RunControl | None = None) -> ExportOutcome:
        try:
            return run_export_process(job, out, started=self._take(), control=control)
        except ExportProcessGone:
            if control is not None:
                control.check()  # killed for a cancel, not a spare that died
            # A spare that died while it waited (killed, out of memory): once more, with a new one.
            # A new one that dies the same way fails the run.
            try:
                return run_export_process(job, out, started=self._start(), control=control)
            except ExportProcessGone as gone:
                raise ExportProcessFailed(gone.run_error_code.value, gone.message) from None

    def _take(self) -> StartedProcess:
        with self._lock:
            if self._closed:
                raise RuntimeError("the export processes are closed")
            spare, self._spare = self._spare, None
            if spare is not None and not spare.usable():
                spare.discard()
                spare = None
            taken = spare or self._start()
            if self._keep_spare:
                self._spare = self._start()
        return taken

    def _start(self) -> StartedProcess:
        if self._starter is None:
            self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-process-starter")
        return self._starter.submit(start_export_process).result()

    def close(self) -> None:
        """Kill the spare; export processes still running end with the starter thread."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()
        if self._starter is not None:
            self._starter.shutdown(wait=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL from another thread (a cancel): never ``Popen.kill``, whose poll could reap the
    process under the worker thread's ``_reap``."""
    if process.returncode is None:
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _controlled(process: subprocess.Popen[bytes], progress_read: int, control: RunControl) -> Iterator[None]:
    """While the block runs, a cancel kills ``process``, and reading the run's progress reads
    the counts the process wrote (in the heartbeat's thread: the copy loop stays as it was)."""
    lock = threading.Lock()
    open_ = [progress_read >= 0]

    def poll() -> None:
        with lock:  # the pipe is closed after the block, never while it is read
            if open_[0]:
                _read_progress(progress_read, control)

    with control.stopped_by(lambda: _kill(process)), control.polled_with(poll):
        try:
            yield
        finally:
            with lock:
                open_[0] = False


def _read_progress(progress_read: int, control: RunControl) -> None:
    """The latest of the counts the export process wrote since the last read, if any."""
    try:
        data = os.read(progress_read, 64 * _ROWS.size)
    except OSError:  # nothing new (EAGAIN)
        return
    if len(data) >= _ROWS.size:
        # Each count is written whole (far below PIPE_BUF), so the pipe holds whole counts.
        (rows,) = _ROWS.unpack_from(data, len(data) - len(data) % _ROWS.size - _ROWS.size)
        control.set_rows(rows)


def _reap(process: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Wait for the process; its exit code and peak resident set size (bytes; 0 when a poll()
    reaped it already)."""
    if process.returncode is not None:
        return process.returncode, 0
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
        raise ExportProcessFailed(
            str(error.get("code", "INTERNAL")), str(error.get("message", "")), transient=error.get("transient") is True
        )
    raise ExportProcessFailed(
        "INTERNAL", f"The export process {_ended(exit_code)} before it finished; the operator log has the details."
    )


def _ended(exit_code: int) -> str:
    return f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"


# --- inside the export process ----------------------------------------------------------------


def main(argv: list[str]) -> int:
    status_fd, worker_pid = int(argv[1]), int(argv[2])
    progress_fd = int(argv[3]) if len(argv) > 3 else -1
    _follow_the_worker(worker_pid)
    _return_freed_memory()
    # Loaded before the job arrives: a spare process does this while it waits.
    from uvm_reporting.exports.job_writer import write_job  # noqa: PLC0415 - after the setup above

    data = sys.stdin.buffer.read()
    if not data:
        return 0  # a spare that was never used: the worker closed our stdin
    job = ExportJob.from_json(data)
    configure_logging(job.log_level, job.log_format)
    try:
        with io.open(sys.stdout.fileno(), "wb", buffering=COPY_BLOCK, closefd=False) as out:  # noqa: UP020
            rows = write_job(job, out, _progress_writer(progress_fd) if progress_fd >= 0 else None)
    except BrokenPipeError:
        return 1  # the worker is gone: nobody to tell
    except Exception as error:
        # Loaded only now: the driver types it checks need not load in every export process.
        from uvm_reporting.exports.query_failures import as_query_failure  # noqa: PLC0415

        failure = run_failure(as_query_failure(error))
        log.log(
            logging.ERROR if failure.code is RunErrorCode.INTERNAL else logging.WARNING,
            "export failed: %s",
            error,
            exc_info=failure.needs_operator,
        )
        _report(
            status_fd,
            {"error": {"code": failure.code.value, "message": failure.message, "transient": failure.transient}},
        )
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


def _progress_writer(fd: int) -> Any:
    os.set_blocking(fd, False)

    def tell(rows: int) -> None:
        # Never blocks the export: a count the worker has not read yet is made stale by the next.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(fd, _ROWS.pack(rows))

    return tell


def _report(fd: int, outcome: dict[str, Any]) -> None:
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as status:
        status.write(json.dumps(outcome).encode("utf-8"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
