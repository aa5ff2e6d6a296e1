"""Wake-ups across processes: PostgreSQL LISTEN/NOTIFY.

``enqueue_run`` sends ``NOTIFY uvm_reporting_runs`` in the enqueuing transaction on
PostgreSQL, so the notification arrives exactly when the run becomes visible. Each worker
process listens on one dedicated connection and turns notifications into its in-process
``RunQueueSignal``. Polling stays as the fallback: a lost connection only costs latency.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from uvm_reporting.database.runs import RUNS_CHANNEL
from uvm_reporting.worker.run_queue_signal import RunQueueSignal

log = logging.getLogger(__name__)


class PostgresWakeupListener:
    def __init__(self, database_url: str, signal: RunQueueSignal) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._signal = signal
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen_forever, name="run-wakeups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _listen_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {RUNS_CHANNEL}")
                    # Runs queued while we were not listening are found by the next poll;
                    # one wake-up now makes that poll immediate.
                    self._signal.notify()
                    while not self._stopping.is_set():
                        for _ in connection.notifies(timeout=1.0):
                            self._signal.notify()
            except psycopg.Error:
                log.warning("listening for queued runs failed; retrying (polling continues meanwhile)", exc_info=True)
                self._stopping.wait(2.0)
