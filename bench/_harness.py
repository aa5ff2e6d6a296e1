"""What the benchmarks share: cached data sets, the real server and worker as subprocesses, the
Reporting API calls, timing statistics, peak memory and the printed tables.

Every benchmark drives the product the way an operator and an API client do: the
``uvm-reporting`` CLI (``--json``) creates the account, data, report and client; ``serve`` and
``worker`` run as subprocesses on 127.0.0.1; the client gets a token and calls
``processReport`` / ``getReportRunStatus`` over HTTP.

Data sets are generated once with the generator's default seed (0) and cached under
``bench/.data/<backend>-<rows>/`` (SQLite) or in the PostgreSQL database ``uvm_bench_<rows>``
(its keys and result storage still live under ``bench/.data/postgresql-<rows>/``). A cached
data set is reused only when its account still holds exactly ``rows`` findings. A benchmark
holds its data set's lock until it ends: two benchmarks on the same data set would share one
run queue, so the second one waits.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql as pgsql

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
DATA_ROOT = BENCH_DIR / ".data"
LOG_DIR = DATA_ROOT / "logs"
CLI = str(Path(sys.executable).parent / "uvm-reporting")
HOST = "127.0.0.1"

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres"
BACKENDS = ("sqlite", "postgresql")

ALL_FINDINGS_REPORT = REPO_ROOT / "examples" / "reports" / "all-findings.json"
QUICK_ROWS = 2_000
NOT_SUPPORTED = "n/a (not supported by this server yet)"
FORMATS = ("csv", "parquet", "ndjson", "xlsx")

PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"
GET_REPORT_RUN_STATUS = (
    "query ($reportId: String, $runId: String) { getReportRunStatus(reportId: $reportId, runId: $runId) }"
)
MiB = 1024 * 1024
MAX_FAILED_POLLS = 1_000
STALE_QUEUED_SECONDS = 600


class BenchError(Exception):
    """A failure that makes a benchmark exit non-zero (a missed target never does)."""


# --- command line -----------------------------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser, *, rows: str, backend: bool = True) -> None:
    parser.add_argument("--rows", default=rows, help=f"findings in the data set (default {rows})")
    parser.add_argument("--runs", type=int, default=3, help="measured repetitions; medians are reported (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke check: {QUICK_ROWS:,} rows and 1 run (overrides --rows and --runs)"
    )
    if backend:
        parser.add_argument("--backend", choices=BACKENDS, default="sqlite", help="database (default sqlite)")


def parse_rows(text: str) -> list[int]:
    """``1000000``, ``1_000_000``, ``1e6``, ``200k``, ``10M`` or a comma-separated list of them."""
    counts = []
    for part in text.split(","):
        item = part.strip().lower().replace("_", "")
        scale = 1
        if item.endswith("k"):
            item, scale = item[:-1], 1_000
        elif item.endswith("m"):
            item, scale = item[:-1], 1_000_000
        try:
            count = round(float(item) * scale)
        except ValueError:
            raise BenchError(f"--rows: {part!r} is not a row count") from None
        if count < 1:
            raise BenchError(f"--rows: {part!r} must be at least 1")
        counts.append(count)
    return counts


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark: exit 0 when it measured (targets met or not), 1 on an error."""
    try:
        main()
    except BenchError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


# --- statistics and output --------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    if not values:
        raise BenchError("no measurements to summarise")
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise BenchError("no measurements to summarise")
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def ratio(ours: float | None, base: float | None) -> str:
    if ours is None or base is None or base <= 0:
        return "-"
    return f"{ours / base:.2f}x"


def megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value / MiB:.1f}"


def machine_summary() -> str:
    """Date (UTC), cores, memory and CPU model: the context every figure needs."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; {os.cpu_count()} cores ({cpu}); {memory} RAM; Python {sys.version.split()[0]}"


def print_header(name: str, details: str) -> None:
    print(f"== {name}: {details}")
    print(f"   machine: {machine_summary()}")


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def product_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a CLI, server or worker process: ours, minus any UVM_REPORTING_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UVM_REPORTING_")}
    env.update({"UVM_REPORTING_DATA_DIR": str(data_dir), "UVM_REPORTING_DATABASE_URL": database_url})
    # A benchmark starts runs and asks for tokens faster than a customer may: no rate limits or quotas
    # (older checkouts ignore these settings).
    env.update({f"UVM_REPORTING_{name}": "0" for name in BENCH_UNLIMITED})
    env.update(extra)
    return env


BENCH_UNLIMITED = (
    "MAX_ACTIVE_RUNS_PER_ACCOUNT",
    "PROCESS_REPORTS_PER_MINUTE_PER_ACCOUNT",
    "TOKEN_REQUESTS_PER_MINUTE_PER_CLIENT",
    "TOKEN_REQUESTS_PER_MINUTE_PER_IP",
)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps the process."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@contextlib.contextmanager
def started_process(
    args: Sequence[str], env: dict[str, str], log_name: str, grace: float = 15.0
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``args`` with output to ``bench/.data/logs/<log_name>.log``; stop it whatever happens."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(args), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT
        )
        try:
            yield process, log_path
        finally:
            stop_process(process, grace)


def log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def read_status_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` memory line (``VmHWM``, ``VmRSS``) in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError as error:
        raise BenchError(f"cannot read /proc/{pid}/status: {error}") from None
    match = re.search(rf"^{key}:\s+(\d+) kB$", text, re.MULTILINE)
    if match is None:
        raise BenchError(f"/proc/{pid}/status has no {key} line")
    return int(match.group(1))


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM: a high-water mark over its whole life)."""
    return read_status_kib(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    return read_status_kib(pid, "VmRSS") * 1024


# --- checkouts to compare -------------------------------------------------------------------


def parse_code(text: str) -> dict[str, Path]:
    """``label=path,label=path`` (or one bare path, labelled ``code``)."""
    codes: dict[str, Path] = {}
    for item in text.split(","):
        label, _, path = item.strip().rpartition("=")
        folder = Path(path or ".").expanduser()
        if not (folder / "src" / "uvm_reporting").is_dir():
            raise BenchError(f"--code: {folder} holds no src/uvm_reporting")
        codes[label or f"code{len(codes) + 1}"] = folder.resolve()
    return codes


def code_commit(folder: Path) -> str:
    completed = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (completed.stdout.strip() or "(not a git checkout)") + (" +uncommitted" if dirty.stdout.strip() else "")


# --- data sets --------------------------------------------------------------------------------


@dataclass
class Dataset:
    backend: str
    rows: int
    root: Path
    database_url: str
    account_id: str
    report_id: str
    client_id: str
    client_secret: str
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def sqlite_file(self) -> Path:
        return self.data_dir / "uvm-reporting.sqlite3"

    @property
    def pg_database(self) -> str:
        return pg_database_name(self.rows)

    def env(self, **extra: str) -> dict[str, str]:
        return product_env(self.data_dir, self.database_url, **extra)

    def save(self) -> None:
        record = {
            "backend": self.backend,
            "rows": self.rows,
            "database_url": self.database_url,
            "account_id": self.account_id,
            "report_id": self.report_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "reports": self.reports,
        }
        (self.root / "dataset.json").write_text(json.dumps(record, indent=2) + "\n")


def pg_database_name(rows: int) -> str:
    return f"uvm_bench_{rows}"


def run_cli(env: dict[str, str], *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run an admin command with ``--json``; return its one JSON object."""
    try:
        completed = subprocess.run(
            [CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"uvm-reporting {' '.join(args)} took longer than {timeout:.0f}s") from None
    if completed.returncode != 0:
        raise BenchError(
            f"uvm-reporting {' '.join(args)} failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}"
        )
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"uvm-reporting {' '.join(args)} printed no JSON:\n{completed.stdout}") from None
    return result


_HELD_LOCKS: dict[str, IO[str]] = {}
LOCK_WAIT_SECONDS = 4 * 3600


def _hold_dataset(root: Path) -> None:
    """Take the data set's lock for the rest of this process, waiting while another benchmark
    holds it. The runs table is one queue: the workers of one benchmark's server would claim the
    runs of another benchmark on the same data set and spoil both measurements."""
    if root.name in _HELD_LOCKS:
        return
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    handle = (DATA_ROOT / f".{root.name}.lock").open("w")
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise BenchError(f"another benchmark held the data set {root.name} for {LOCK_WAIT_SECONDS}s") from None
            if not told:
                print(f"   waiting for another benchmark that uses the data set {root.name}", flush=True)
                told = True
            time.sleep(1)
    _HELD_LOCKS[root.name] = handle  # released when this process exits


def release_dataset(dataset: Dataset) -> None:
    """Let other benchmarks use the data set before this process ends."""
    handle = _HELD_LOCKS.pop(dataset.root.name, None)
    if handle is not None:
        handle.close()


def prepare_dataset(backend: str, rows: int) -> Dataset:
    """The cached data set of ``rows`` findings on ``backend``; generated when missing or wrong."""
    if backend not in BACKENDS:
        raise BenchError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    root = DATA_ROOT / f"{backend}-{rows}"
    _hold_dataset(root)
    cached = _load_cached(root)
    if cached is not None and _still_valid(cached):
        _settle_unfinished_runs(cached)
        return cached
    return _build(backend, rows, root)


def _load_cached(root: Path) -> Dataset | None:
    try:
        record = json.loads((root / "dataset.json").read_text())
        return Dataset(
            backend=record["backend"],
            rows=int(record["rows"]),
            root=root,
            database_url=record["database_url"],
            account_id=record["account_id"],
            report_id=record["report_id"],
            client_id=record["client_id"],
            client_secret=record["client_secret"],
            reports=dict(record.get("reports", {})),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _query_one(dataset: Dataset, query: str, *params: Any) -> Any:
    """One value from the data set's database (read-only use by the benchmarks)."""
    if dataset.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(dataset.sqlite_file, timeout=30)) as connection:
            row = connection.execute(query.replace("%s", "?"), params).fetchone()
    else:
        with psycopg.connect(f"{PG_CONNINFO} dbname={dataset.pg_database}") as connection:
            row = connection.execute(query, params).fetchone()
    return None if row is None else row[0]


def _still_valid(dataset: Dataset) -> bool:
    if dataset.backend == "sqlite" and not dataset.sqlite_file.is_file():
        return False
    if dataset.backend == "postgresql" and not _pg_database_exists(dataset.pg_database):
        return False
    try:
        findings = _query_one(dataset, "SELECT count(*) FROM findings WHERE account_id = %s", dataset.account_id)
        report = _query_one(
            dataset,
            "SELECT count(*) FROM reports WHERE id = %s AND account_id = %s",
            dataset.report_id,
            dataset.account_id,
        )
        client = _query_one(
            dataset, "SELECT count(*) FROM api_clients WHERE client_id = %s AND revoked_at IS NULL", dataset.client_id
        )
    except (sqlite3.Error, psycopg.Error):
        return False
    return bool(findings == dataset.rows and report == 1 and client == 1)


def _settle_unfinished_runs(dataset: Dataset) -> None:
    """Runs left behind by an interrupted benchmark would be claimed first by the next worker and
    distort its figures: mark them failed in the (benchmark-only) database. Only runs that are
    surely abandoned count: started ones whose worker's lease has expired, and runs queued for
    more than STALE_QUEUED_SECONDS. So a benchmark running at the same time keeps its runs."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=STALE_QUEUED_SECONDS)
    fail_runs(
        dataset,
        "(state = 'started' AND lease_expires_at < %s) OR (state = 'queued' AND created_at < %s)",
        (now, stale),
        "abandoned by an interrupted benchmark",
    )


def fail_runs(dataset: Dataset, where: str, params: Sequence[Any], message: str) -> None:
    """Mark the unfinished runs that ``where`` selects failed, in the (benchmark-only) database;
    timestamps among ``params`` are written as the store keeps them."""
    statement = (
        f"UPDATE runs SET state = 'failed', error_code = 'INTERNAL', error_message = %s "
        f"WHERE state IN ('queued', 'started') AND ({where})"
    )
    values = [message, *params]
    try:
        if dataset.backend == "sqlite":
            with contextlib.closing(sqlite3.connect(dataset.sqlite_file, timeout=30)) as connection:
                connection.execute(
                    statement.replace("%s", "?"), [_sqlite_utc(v) if isinstance(v, datetime) else v for v in values]
                )
                connection.commit()
        else:
            with psycopg.connect(f"{PG_CONNINFO} dbname={dataset.pg_database}") as connection:
                connection.execute(statement, values)
    except (sqlite3.Error, psycopg.Error) as error:
        print(f"   note: could not settle unfinished runs: {error}")


def _sqlite_utc(moment: datetime) -> str:
    """A timestamp as the store keeps it on SQLite (fixed-width ISO-8601 text, so it sorts)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(f"{PG_CONNINFO} dbname=postgres", autocommit=True)
    except psycopg.OperationalError as error:
        raise BenchError(f"PostgreSQL at 127.0.0.1:5432 does not answer: {error}") from None


def _pg_database_exists(name: str) -> bool:
    with _pg_admin() as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _pg_account_with(name: str, rows: int) -> str | None:
    """The account of database ``name`` that holds exactly ``rows`` findings, if any."""
    try:
        with psycopg.connect(f"{PG_CONNINFO} dbname={name}") as connection:
            found = connection.execute(
                "SELECT account_id FROM findings GROUP BY account_id HAVING count(*) = %s LIMIT 1", (rows,)
            ).fetchone()
    except psycopg.Error:
        return None
    return None if found is None else str(found[0])


def _build(backend: str, rows: int, root: Path) -> Dataset:
    shutil.rmtree(root, ignore_errors=True)
    (root / "var").mkdir(parents=True)
    if backend == "sqlite":
        database_url = f"sqlite:///{root / 'var' / 'uvm-reporting.sqlite3'}"
    else:
        database_url = f"{PG_SERVER}/{pg_database_name(rows)}"
    env = product_env(root / "var", database_url)
    account_id = (
        _pg_account_with(pg_database_name(rows), rows)
        if backend == "postgresql" and _pg_database_exists(pg_database_name(rows))
        else None
    )
    if backend == "postgresql" and account_id is None:
        name = pg_database_name(rows)
        with _pg_admin() as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
            admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    if account_id is None:
        account_id = str(run_cli(env, "accounts", "create", "--name", f"Bench {rows} findings")["id"])
        print(
            f"   generating {rows:,} findings (seed 0) on {backend}; cached for later runs under "
            f"{root.relative_to(REPO_ROOT)}",
            flush=True,
        )
        started = time.monotonic()
        run_cli(env, "data", "generate", "--account", account_id, "--findings", str(rows), timeout=600 + rows / 1_000)
        print(f"   generated in {time.monotonic() - started:.0f}s", flush=True)
    else:
        print(f"   reusing PostgreSQL database {pg_database_name(rows)} (account {account_id})", flush=True)
    report = run_cli(env, "reports", "create", "--account", account_id, "--file", str(ALL_FINDINGS_REPORT))
    client = run_cli(env, "clients", "create", "--account", account_id, "--name", "bench")
    dataset = Dataset(
        backend=backend,
        rows=rows,
        root=root,
        database_url=database_url,
        account_id=account_id,
        report_id=str(report["id"]),
        client_id=str(client["client_id"]),
        client_secret=str(client["client_secret"]),
    )
    dataset.save()
    return dataset


def ensure_report(dataset: Dataset, key: str, definition: dict[str, Any]) -> str:
    """The id of an extra report saved once per data set under ``key`` (e.g. a tiny report)."""
    _hold_dataset(dataset.root)
    existing = dataset.reports.get(key)
    if existing is not None and _query_one(dataset, "SELECT count(*) FROM reports WHERE id = %s", existing) == 1:
        return existing
    path = dataset.root / f"report-{key}.json"
    path.write_text(json.dumps(definition, indent=2) + "\n")
    created = run_cli(dataset.env(), "reports", "create", "--account", dataset.account_id, "--file", str(path))
    dataset.reports[key] = str(created["id"])
    dataset.save()
    return dataset.reports[key]


def report_definition(path: Path = ALL_FINDINGS_REPORT) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(path.read_text())
    return definition


def report_select_sql(dataset: Dataset, definition: dict[str, Any] | None = None) -> str:
    """The exact SELECT the product runs for the report (its own compiler), on one line with the
    account id inlined, for the database's own tools."""
    from sqlalchemy import create_engine  # noqa: PLC0415

    from uvm_reporting.domain.report_definition.parsing import parse_report_definition  # noqa: PLC0415
    from uvm_reporting.exports.query_compiler import compile_report_query  # noqa: PLC0415

    parsed = parse_report_definition(definition or report_definition())
    statement = compile_report_query(parsed, dataset.account_id)
    # An engine that is never connected: only its dialect is used, to render the SQL.
    dialect = create_engine("sqlite://" if dataset.backend == "sqlite" else "postgresql+psycopg://").dialect
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return " ".join(str(compiled).split())


def remove_results(dataset: Dataset, run_id: str) -> None:
    """Delete a measured run's result file, so repeated benchmarks don't fill the disk."""
    results = dataset.storage_dir / "results"
    if results.is_dir():
        for path in results.rglob(f"*{run_id}*"):
            if path.is_file():
                path.unlink()


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


# --- server, worker, API ----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    parsed = urllib.parse.urlsplit(base_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}:\n{log_tail(log_path)}")
        connection = http.client.HTTPConnection(parsed.hostname or HOST, parsed.port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise BenchError(f"the server did not answer /healthz within {timeout:.0f}s:\n{log_tail(log_path)}")


@contextlib.contextmanager
def running_server(
    dataset: Dataset,
    *,
    workers: bool = True,
    worker_threads: int | None = None,
    log_name: str = "server",
    code: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``uvm-reporting serve`` on a free port (``--no-workers`` unless ``workers``); stopped on exit.

    ``code``: another checkout whose ``src/`` the server runs instead of this one's (e.g. an
    older commit in a ``git worktree``), with this checkout's installed dependencies. ``env``:
    more settings (``UVM_REPORTING_*``) for this server."""
    port = free_port()
    args = [CLI, "serve", "--host", HOST, "--port", str(port)]
    if not workers:
        args.append("--no-workers")
    extra = {} if worker_threads is None else {"UVM_REPORTING_WORKER_THREADS": str(worker_threads)}
    extra.update(env or {})
    if code is not None:
        extra["PYTHONPATH"] = str(code.resolve() / "src")
    with started_process(args, dataset.env(**extra), log_name) as (process, log_path):
        base_url = f"http://{HOST}:{port}"
        _wait_until_healthy(base_url, process, log_path)
        yield Server(base_url, process, log_path)


_WORKER_READY = re.compile(rb"running \d+ thread")


@contextlib.contextmanager
def running_worker(
    dataset: Dataset, *, concurrency: int = 1, log_name: str = "worker", ready_timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``uvm-reporting worker`` process, yielded once it has logged that its threads run."""
    args = [CLI, "worker", "--concurrency", str(concurrency), "--grace", "5"]
    with started_process(args, dataset.env(UVM_REPORTING_LOG_LEVEL="INFO"), log_name) as (process, log_path):
        deadline = time.monotonic() + ready_timeout
        while not _WORKER_READY.search(log_path.read_bytes()):
            if process.poll() is not None:
                raise BenchError(f"the worker exited with {process.returncode}:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the worker did not report it was running within {ready_timeout:.0f}s:\n{log_tail(log_path)}"
                )
            time.sleep(0.02)
        yield process


class GraphQLError(BenchError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.errors = errors

    @property
    def codes(self) -> set[str]:
        return {str(e.get("extensions", {}).get("code")) for e in self.errors}


class ServerError(BenchError):
    """An HTTP 5xx answer."""


class ApiClient:
    """One keep-alive HTTP connection to the Reporting API, as a client program would hold."""

    def __init__(self, base_url: str, account_id: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self._host = parsed.hostname or HOST
        self._port = parsed.port or 80
        self.account_id = account_id
        self.token = token
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
            try:
                self._connection.request("POST", path, body=body, headers=headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def graphql_request(self, query: str, variables: dict[str, Any], name: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a GraphQL call, as the spec's curl commands send them."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {
            "Content-Type": "application/json",
            "accountId": self.account_id,
            "graphqlname": name,
            "Authorization": f"Bearer {self.token}",
        }
        return body, headers

    def graphql(self, query: str, variables: dict[str, Any], name: str) -> Any:
        body, headers = self.graphql_request(query, variables, name)
        status, payload = self.post("/api/graphql", body, headers)
        if status >= 500:
            raise ServerError(f"{name}: HTTP {status}: {payload[:300]!r}")
        try:
            answer = json.loads(payload)
        except json.JSONDecodeError:
            raise BenchError(f"{name}: HTTP {status}, not JSON: {payload[:300]!r}") from None
        if answer.get("errors"):
            raise GraphQLError(answer["errors"])
        if status != 200:
            raise BenchError(f"{name}: HTTP {status}: {payload[:300]!r}")
        return answer["data"]

    def run_status(self, report_id: str, run_id: str) -> dict[str, Any]:
        data = self.graphql(GET_REPORT_RUN_STATUS, {"reportId": report_id, "runId": run_id}, "getReportRunStatus")
        status: dict[str, Any] = data["getReportRunStatus"]
        return status


def get_token(base_url: str, client_id: str, client_secret: str) -> str:
    parsed = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parsed.hostname or HOST, parsed.port, timeout=60)
    try:
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        )
        connection.request(
            "POST",
            "/oauth2/token",
            body=body,
            headers={"accept": "application/json", "content-type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise BenchError(f"/oauth2/token answered {response.status}: {payload[:300]!r}")
    token: str = json.loads(payload)["access_token"]
    return token


def api_client(base_url: str, dataset: Dataset) -> ApiClient:
    return ApiClient(base_url, dataset.account_id, get_token(base_url, dataset.client_id, dataset.client_secret))


# --- export requests: the one place that knows how to ask for a format ------------------------


@dataclass(frozen=True)
class ExportRequest:
    format: str
    query: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class ArgumentType:
    """A GraphQL argument's type: its named type, its kind, and how it is written (``String!``)."""

    name: str
    kind: str
    text: str
    enum_values: tuple[str, ...] = ()


_TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
FORMAT_ARGUMENT_NAMES = ("format", "fileFormat", "exportFormat", "outputFormat")


def _type_text(ref: dict[str, Any]) -> tuple[str, str, str]:
    """(written type, named type, named kind) of an introspected type reference."""
    if ref["kind"] == "NON_NULL":
        text, name, kind = _type_text(ref["ofType"])
        return f"{text}!", name, kind
    if ref["kind"] == "LIST":
        text, name, kind = _type_text(ref["ofType"])
        return f"[{text}]", name, kind
    return str(ref["name"]), str(ref["name"]), str(ref["kind"])


def process_report_arguments(client: ApiClient) -> dict[str, ArgumentType]:
    """processReport's arguments as this server declares them (by introspection); {} if it won't say."""
    query = f'{{ __type(name: "Mutation") {{ fields {{ name args {{ name type {{ {_TYPE_REF} }} }} }} }} }}'
    try:
        data = client.graphql(query, {}, "IntrospectMutation")
    except BenchError:
        return {}
    fields = (data.get("__type") or {}).get("fields") or []
    process = next((f for f in fields if f["name"] == "processReport"), None)
    if process is None:
        return {}
    arguments: dict[str, ArgumentType] = {}
    for argument in process["args"]:
        text, name, kind = _type_text(argument["type"])
        values: tuple[str, ...] = ()
        if kind == "ENUM":
            with contextlib.suppress(BenchError):
                enum = client.graphql(f'{{ __type(name: "{name}") {{ enumValues {{ name }} }} }}', {}, "IntrospectEnum")
                values = tuple(v["name"] for v in (enum.get("__type") or {}).get("enumValues") or [])
        arguments[argument["name"]] = ArgumentType(name=name, kind=kind, text=text, enum_values=values)
    return arguments


def export_request(fmt: str, report_id: str, arguments: dict[str, ArgumentType]) -> ExportRequest | None:
    """How to ask this server for a download-link export of ``report_id`` in ``fmt``; None when it can't.

    processReport's arguments come from introspection. When it declares a format argument (any
    of FORMAT_ARGUMENT_NAMES, a String or an enum), every format is requested through it:
    ``processReport(id, isPresignedUrl: true, format: "parquet")``. A server without one only
    makes CSV, through ``processReport(id, isPresignedUrl: true)``. A server that takes the
    format some other way needs a branch here, and nowhere else.
    """
    argument_name = next((name for name in FORMAT_ARGUMENT_NAMES if name in arguments), None)
    if argument_name is None:
        if fmt == "csv":
            return ExportRequest("csv", PROCESS_REPORT, {"id": report_id})
        return None
    argument = arguments[argument_name]
    if argument.kind == "ENUM":
        value: str | None = next((v for v in argument.enum_values if v.lower() == fmt.lower()), None)
    elif argument.name in ("String", "ID"):
        value = fmt
    else:
        value = None
    if value is None:
        return None
    query = (
        f"mutation ($id: String!, $format: {argument.text}) "
        f"{{processReport(id:$id, isPresignedUrl: true, {argument_name}: $format)}}"
    )
    return ExportRequest(fmt, query, {"id": report_id, "format": value})


# One row, one column: a run's cost is then the queue's and the API's, not the export's.
TINY_REPORT = {
    "name": "Bench: one finding id",
    "entity": "findings",
    "columns": ["id"],
    "sort": [{"field": "id", "direction": "asc"}],
    "limit": 1,
    "viewers": "public",
    "editors": "public",
}


def fresh_download_request(client: ApiClient, report_id: str) -> ExportRequest:
    """processReport for a CSV download link that always queues a run of its own: with
    ``forceNew: true`` where the server joins identical requests to a run still under way (it
    declares the argument), plain where it does not (an older server, compared in the same run)."""
    force_new = ", forceNew: true" if "forceNew" in process_report_arguments(client) else ""
    query = f"mutation ($id: String!) {{processReport(id:$id, isPresignedUrl: true{force_new})}}"
    return ExportRequest("csv", query, {"id": report_id})


# --- runs -------------------------------------------------------------------------------------


def parse_utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def span_seconds(start: str | None, end: str | None) -> float | None:
    begin, finish = parse_utc(start), parse_utc(end)
    return None if begin is None or finish is None else (finish - begin).total_seconds()


@dataclass
class RunTiming:
    """One run, timed by the server (its timestamps) and by the client (monotonic clock)."""

    run_id: str
    status: dict[str, Any]
    called_at: float  # just before processReport was sent
    returned_at: float  # processReport's answer received
    started_seen_at: float | None  # first poll that showed the run past "queued"
    finished_seen_at: float  # first poll that showed it no longer Running
    polls: int
    poll_seconds: list[float]  # the duration of each getReportRunStatus call
    failed_polls: int = 0  # getReportRunStatus calls answered HTTP 5xx or INTERNAL_SERVER_ERROR (retried)

    @property
    def api_seconds(self) -> float | None:
        """finishedAt - createdAt, as the API reports them."""
        return span_seconds(self.status.get("createdAt"), self.status.get("finishedAt"))

    @property
    def queue_seconds(self) -> float | None:
        """startedAt - createdAt, as the API reports them."""
        return span_seconds(self.status.get("createdAt"), self.status.get("startedAt"))

    @property
    def wall_seconds(self) -> float:
        """From sending processReport to seeing the run finished."""
        return self.finished_seen_at - self.called_at


def start_run(client: ApiClient, request: ExportRequest) -> tuple[str, float, float]:
    called = time.monotonic()
    data = client.graphql(request.query, request.variables, "processReport")
    returned = time.monotonic()
    return str(data["processReport"]["runId"]), called, returned


def run_report(
    client: ApiClient,
    report_id: str,
    request: ExportRequest,
    *,
    poll_interval: float = 0.01,
    timeout: float = 600,
    first_poll_after: float = 0.0,
) -> RunTiming:
    """processReport, then getReportRunStatus every ``poll_interval`` until the run is not Running
    (the first one ``first_poll_after`` seconds after processReport answered)."""
    run_id, called, returned = start_run(client, request)
    time.sleep(first_poll_after)
    deadline = returned + timeout
    started_seen: float | None = None
    polls = failed = 0
    durations: list[float] = []
    while True:
        before = time.monotonic()
        try:
            status = client.run_status(report_id, run_id)
        except (GraphQLError, ServerError) as error:
            # A polling client retries a failed status call; the failures are counted and reported.
            internal = isinstance(error, ServerError) or "INTERNAL_SERVER_ERROR" in error.codes
            if not internal or failed >= MAX_FAILED_POLLS:
                raise
            failed += 1
            time.sleep(poll_interval)
            continue
        seen = time.monotonic()
        durations.append(seen - before)
        polls += 1
        if started_seen is None and status.get("state") != "queued":
            started_seen = seen
        if status["status"] != "Running":
            return RunTiming(run_id, status, called, returned, started_seen, seen, polls, durations, failed)
        if seen > deadline:
            raise BenchError(f"run {run_id} was still Running after {timeout:.0f}s: {status}")
        time.sleep(max(0.0, poll_interval - (time.monotonic() - before)))


def warn_failed_polls(timings: Sequence[RunTiming], log_hint: str) -> None:
    """Say so when status calls failed during the measurements (they were retried)."""
    failed = sum(t.failed_polls for t in timings)
    if failed:
        total = failed + sum(t.polls for t in timings)
        print(
            f"WARNING: {failed} of {total} getReportRunStatus calls failed (HTTP 500 or INTERNAL_SERVER_ERROR) "
            f"and were retried; the server log ({log_hint}) has the cause."
        )


def require_completed(timing: RunTiming, *, rows: int | None = None) -> None:
    status = timing.status
    if status["status"] != "Completed":
        raise BenchError(
            f"run {timing.run_id} ended {status['status']}: {status.get('errorCode')} {status.get('errorMessage')}"
        )
    if rows is not None and status.get("rowCount") != rows:
        raise BenchError(f"run {timing.run_id} wrote {status.get('rowCount')} rows, expected {rows}")


def export_timeout(rows: int) -> float:
    """A generous bound for one export of ``rows`` rows on a slow, shared machine."""
    return 300 + rows / 1_000


def try_export(
    client: ApiClient,
    dataset: Dataset,
    request: ExportRequest | None,
    *,
    poll_interval: float = 0.01,
    first_poll_after: float = 0.0,
) -> RunTiming | str:
    """One export as ``request`` asks, checked (Completed, every row, the format asked for) and its
    file removed; or, when this server cannot make it, the reason as an "n/a (...)" text."""
    if request is None:
        return NOT_SUPPORTED
    try:
        timing = run_report(
            client,
            dataset.report_id,
            request,
            poll_interval=poll_interval,
            timeout=export_timeout(dataset.rows),
            first_poll_after=first_poll_after,
        )
    except GraphQLError as error:
        if error.codes & {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}:
            return f"n/a (the server refused it: {error})"
        raise
    remove_results(dataset, timing.run_id)
    require_completed(timing, rows=dataset.rows)
    made = str(timing.status.get("format", "")).lower()
    if made != request.format:
        return f"n/a (asked for {request.format}, the server made {made})"
    return timing
