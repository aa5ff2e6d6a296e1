"""The schema, as SQLAlchemy Core tables. Alembic migrations under ``migrations/`` create it.

Metadata (accounts, API clients, reports, runs; the runs table is the work queue) and the
platform's data (``findings``, ``assets``, columns named like the catalog's fields) live in
the same database. Every platform row carries its ``account_id``: tenant isolation is a
predicate on every query, never an afterthought.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from uvm_reporting.database.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    # The ExternalId the customer's IAM role trusts us with: generated here, never editable.
    Column("external_id", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(precise=True), nullable=False),
    # Set while the account is disabled: its clients get no tokens, and their tokens and
    # download links stop working.
    Column("disabled_at", UtcDateTime(precise=True)),
)

api_clients = Table(
    "api_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime(precise=True), nullable=False),
    Column("revoked_at", UtcDateTime(precise=True)),
    # While a client rotates its secret, the one before the newest still works until revoked.
    Column("previous_secret_hash", String(200)),
    Column("secret_rotated_at", UtcDateTime(precise=True)),
    Index(None, "account_id"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("viewers", String(10), nullable=False),
    Column("editors", String(10), nullable=False),
    # Denormalised from the definition's schedule so a scheduler finds due reports by index.
    Column("schedule_active", Boolean, nullable=False, server_default=false()),
    Column("next_fire_at", UtcDateTime(precise=True)),
    Column("created_at", UtcDateTime(precise=True), nullable=False),
    Column("updated_at", UtcDateTime(precise=True), nullable=False),
    Index(None, "account_id"),
    Index(None, "schedule_active", "next_fire_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("report_id", String(36), ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
    # queued -> started -> completed | failed | cancelled; the API shows queued and started as "Running".
    Column("state", String(12), nullable=False),
    Column("delivery", String(12), nullable=False),
    Column("format", String(12), nullable=False),
    Column("compression", String(10)),
    # Where an S3 run delivers: bucket, key, region, role_arn (null for download runs).
    Column("destination", JSON),
    # The fire time a scheduled run was enqueued for; unique per report, so that several
    # schedulers racing on the same fire time create one run.
    Column("scheduled_for", UtcDateTime(precise=True)),
    # The report's definition when the run was requested: later edits don't change a queued run.
    Column("definition", JSON, nullable=False),
    Column("requested_by", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # The account's turn in the queue: workers claim the lowest round first (oldest first
    # within a round), so accounts take turns (database/runs.py).
    Column("queue_round", BigInteger, nullable=False, server_default="0"),
    Column("worker_id", String(100)),
    Column("lease_expires_at", UtcDateTime(precise=True)),
    Column("created_at", UtcDateTime(precise=True), nullable=False),
    Column("started_at", UtcDateTime(precise=True)),
    Column("finished_at", UtcDateTime(precise=True)),
    # 64-bit: a result file of 2 GiB or more (10M rows of CSV) overflows a 32-bit INTEGER.
    Column("row_count", BigInteger),
    Column("size_bytes", BigInteger),
    Column("sha256", String(64)),
    Column("result_key", String(500)),
    Column("error_code", String(40)),
    Column("error_message", Text),
    # While a run waits, queued, for its next attempt after a transient failure: not claimed
    # before this time (its error_code and error_message hold the failed attempt's cause).
    Column("next_attempt_at", UtcDateTime(precise=True)),
    # When the cleanup job deleted a download run's file from our storage (application/cleanup.py).
    Column("expired_at", UtcDateTime(precise=True)),
    # Set when a started run is cancelled; its worker's heartbeat reads it and stops the export.
    Column("cancel_requested_at", UtcDateTime(precise=True)),
    # A started run's progress, written by its worker's heartbeat.
    Column("rows_written", BigInteger),
    Column("bytes_written", BigInteger),
    Index(None, "state", "created_at"),
    Index(None, "report_id", "created_at"),
    Index(None, "state", "queue_round", "created_at", "id"),  # the claim order
    Index(None, "account_id", "state", "queue_round"),  # an account's active runs: its quota and last round
    Index(None, "state", "finished_at"),  # the cleanup job: runs past the result retention or the run history
    UniqueConstraint("report_id", "scheduled_for"),
)

# processReport's idempotency keys (database/idempotency_keys.py): a key of an account names the
# run its first request got, for as long as the key lives. request_hash is the SHA-256 of the
# request's canonical arguments: the same key with other arguments is refused.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    # The run goes, its key goes: a replay never points at a deleted run.
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    # Whether the first request joined a run already queued or started (its answer said so).
    Column("joined", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime(precise=True), nullable=False),
    Column("expires_at", UtcDateTime(precise=True), nullable=False),
    Index(None, "expires_at"),  # the cleanup deletes by time
    Index(None, "run_id"),  # the cascade from a deleted run
)

# What happened to an account's objects, and who did it (database/audit.py writes them in the
# transaction of the change they describe). No foreign keys: an event outlives what it names,
# and a deployment-wide event (a signing key rotated) has no account.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36)),
    Column("occurred_at", UtcDateTime(precise=True), nullable=False),
    Column("action", String(60), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("actor_id", String(200)),
    Column("target_kind", String(40)),
    Column("target_id", String(200)),
    Column("source_ip", String(45)),
    Column("request_id", String(64)),
    Column("details", JSON, nullable=False),
    # An account's events, newest first (the query and its cursor); retention deletes by time.
    Index(None, "account_id", "occurred_at", "id"),
    Index(None, "occurred_at"),
)

# Fixed-window rate-limit counters shared by a deployment's API processes
# (database/rate_limit_counters.py); expires_at is epoch seconds.
rate_limit_counters = Table(
    "rate_limit_counters",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)

assets = Table(
    "assets",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("ip", String(45)),
    Column("os", String(100)),
    Column("type", String(40)),
    Column("owner", String(200)),
    Column("business_unit", String(100)),
    Column("criticality", String(20)),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
)

findings = Table(
    "findings",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("asset_id", String(64)),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("severity", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("cvss_score", Float),
    Column("cve", String(30)),
    Column("cwe", String(20)),
    Column("source", String(100)),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("due_date", Date),
    Column("resolved_at", UtcDateTime()),
    # No FK to assets: platform feeds may report a finding before its asset arrives.
    Index(None, "account_id", "asset_id"),
)

PLATFORM_TABLES = {"findings": findings, "assets": assets}


def analyze_platform_tables(engine: Engine) -> None:
    """Refresh the planner's statistics after a bulk load. Without them PostgreSQL may plan an
    export's join for a handful of rows (a nested loop) and take minutes instead of seconds."""
    with engine.begin() as connection:
        for table in PLATFORM_TABLES.values():
            connection.exec_driver_sql(f"ANALYZE {table.name}")
