"""One typed settings object, read once at start-up from ``UVM_REPORTING_*`` env vars.

The defaults give the embedded mode: a SQLite file and a storage folder under ``./var`` of
the working directory. Tests build their own ``Settings(...)`` instead of editing the
environment.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REGION = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UVM_REPORTING_", extra="forbid")

    data_dir: Path = Field(default=Path("var"), description="Root of the embedded mode's files.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite file in data_dir.")
    storage_url: str = Field(default="", description="Where results are kept; default: data_dir/storage.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="This deployment's base URL: token issuer and base of download links.",
    )
    region: str = Field(default="us01", description="This deployment's region, e.g. us01 or eu.")
    token_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    keys_dir: Path = Field(
        default=Path(),
        description="Folder of the token-signing and download-link key rings (default: data_dir/keys), "
        "shared by every process of the deployment.",
    )
    key_reload_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=300,
        description="How often each process reads the keys folder again, so that a rotation reaches it.",
    )
    profile: Literal["development", "production"] = Field(
        default="development",
        description="production: no GraphQL introspection or explorer, an https public_url, no keys made at start.",
    )
    graphql_introspection: bool | None = Field(
        default=None, description="Answer GraphQL introspection queries; default: on except in production."
    )
    graphql_explorer: bool | None = Field(
        default=None, description="Serve the GraphQL explorer page; default: on except in production."
    )
    require_https: bool | None = Field(
        default=None, description="Refuse a public_url that is not https://; default: on in production."
    )
    generate_keys: bool | None = Field(
        default=None,
        description="Make missing keys at start and accept keys made that way; default: on except in production, "
        "where keys must come from `uvm-reporting keys rotate`.",
    )
    download_link_lifetime_seconds: int = Field(default=3600, ge=10, le=7 * 86400)
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 and STS endpoint (S3-compatible storage, tests). Operator setting only.",
    )
    aws_region: str = Field(default="us-east-1", description="Region of our own AWS calls (STS, own S3).")
    aws_principal_arn: str | None = Field(
        default=None,
        description="This deployment's AWS principal, shown in the trust policy; default: asked of STS.",
    )
    operator_aws_account_ids: str = Field(
        default="",
        description="This deployment's own AWS account ids, comma-separated: deliveries never assume a role of "
        "these accounts. Default: the account of our own identity, asked of STS.",
    )
    worker_threads: int = Field(default=2, ge=0, le=64)
    export_parallelism: int = Field(
        default=2,
        ge=1,
        le=16,
        description="SQLite connections (and threads) one large CSV/NDJSON/JSON export may use at once, "
        "each over its own range of ids; 1 turns splitting off.",
    )
    export_process_min_rows: int = Field(
        default=20_000,
        ge=0,
        description="A report whose entity holds at least this many rows of the account is exported in a "
        "process of its own (Arrow, C speed); smaller ones in the worker's thread. 0: always.",
    )
    scheduler_in_serve: bool = Field(default=True, description="Run the scheduler inside serve (embedded mode).")
    scheduler_interval_seconds: float = Field(default=15.0, ge=0.5, description="Seconds between scheduler ticks.")
    audit_retention_days: int = Field(
        default=365,
        ge=0,
        description="Days an audit event is kept; the scheduler deletes older ones about hourly. 0: keep forever.",
    )
    result_retention_seconds: int = Field(
        default=7 * 86400,
        ge=0,
        description="How long a download run's result file is kept after the run finished; then the run "
        "answers expired, without a link, and the cleanup job deletes the file. 0: keep forever.",
    )
    run_history_days: int = Field(
        default=90,
        ge=0,
        description="Days a finished run's record is kept; the cleanup job deletes older ones. 0: keep forever.",
    )
    cleanup_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between two passes of the cleanup job inside serve and scheduler; 0: never "
        "(run `uvm-reporting cleanup` from cron instead).",
    )
    run_lease_seconds: int = Field(default=60, ge=5)
    run_max_attempts: int = Field(default=3, ge=1)
    run_retry_base_seconds: float = Field(
        default=2.0,
        ge=0.0,
        description="Wait before the first retry of a run that failed for a passing reason (S3 throttling or 5xx, "
        "a dropped database connection, an STS hiccup); doubled for each further one, with jitter. Retries share "
        "the run_max_attempts budget with lost leases.",
    )
    run_retry_max_seconds: float = Field(default=60.0, ge=0.0, description="The longest wait between two attempts.")
    progress_seconds: float = Field(
        default=1.0,
        gt=0,
        le=2.0,
        description="How often a worker's heartbeat writes the progress of its runs (rowsWritten, bytesWritten) "
        "and reads cancel requests for them.",
    )
    rate_limit_storage_url: str = Field(
        default="",
        description="Where rate-limit counters live: 'memory://' (this process), 'database' (the deployment's "
        "database, shared by its processes), or a storage URI of the limits library such as "
        "redis://127.0.0.1:6379. Default: memory on SQLite, the database on PostgreSQL.",
    )
    token_requests_per_minute_per_client: int = Field(
        default=30, ge=0, description="POST /oauth2/token requests per client id and minute; 0: no limit."
    )
    token_requests_per_minute_per_ip: int = Field(
        default=120, ge=0, description="POST /oauth2/token requests per source IP and minute; 0: no limit."
    )
    process_reports_per_minute_per_account: int = Field(
        default=60, ge=0, description="processReport calls per account and minute; 0: no limit."
    )
    login_attempts_per_minute_per_email: int = Field(
        default=10, ge=0, description="Web UI sign-in attempts per email and minute (for the UI's login); 0: no limit."
    )
    login_attempts_per_minute_per_ip: int = Field(
        default=60, ge=0, description="Web UI sign-in attempts per source IP and minute; 0: no limit."
    )
    secret_hashing_threads: int = Field(
        default=2, ge=1, le=16, description="Threads of an API process that check client secrets (Argon2)."
    )
    secret_hashing_queue: int = Field(
        default=8,
        ge=0,
        le=1000,
        description="Token requests that may wait for a secret-hashing thread; beyond that the token "
        "endpoint answers 503 with Retry-After at once.",
    )
    max_active_runs_per_account: int = Field(
        default=100,
        ge=0,
        description="Runs one account may have queued or running at once; processReport over it gets "
        "QUOTA_EXCEEDED, a scheduled run over it is recorded as Failed with that code. 0: no cap.",
    )
    idempotency_key_seconds: int = Field(
        default=86400,
        ge=1,
        description="How long processReport's idempotencyKey names its run: the same key with the same "
        "arguments answers that run for this long; with other arguments, IDEMPOTENCY_KEY_REUSED.",
    )
    min_schedule_interval_minutes: int = Field(
        default=15,
        ge=0,
        le=1440,
        description="Shortest time between two fire times a saved schedule may have (a cron expression "
        "firing more often is refused). 0: no minimum.",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one escaped line per record; json: one JSON object per line (time, level, logger, "
        "message, request_id, run_id and the record's extra fields).",
    )
    metrics_token: str = Field(
        default="",
        description="Bearer token that GET /metrics asks for. Unset: /metrics is open in the development "
        "profile and not served in production.",
    )
    max_graphql_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest body of a POST /api/graphql; a larger one is answered 413 before it is read.",
    )
    max_token_body_bytes: int = Field(
        default=4096,
        ge=256,
        le=1024 * 1024,
        description="Largest body of a POST /oauth2/token; a larger one is answered 413 before it is read.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest body of a request to any other route (form posts); larger: 413, unread.",
    )

    @field_validator("region")
    @classmethod
    def _region_is_a_name(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError("region must be a short lower-case name such as 'us01' or 'eu'")
        return value

    @field_validator("operator_aws_account_ids")
    @classmethod
    def _account_ids(cls, value: str) -> str:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if any(not (len(i) == 12 and i.isascii() and i.isdigit()) for i in ids):
            raise ValueError("operator_aws_account_ids must be 12-digit AWS account ids separated by commas")
        return ",".join(ids)

    @property
    def operator_account_ids(self) -> frozenset[str] | None:
        """The configured operator account ids; None: ask STS."""
        return frozenset(self.operator_aws_account_ids.split(",")) if self.operator_aws_account_ids else None

    @field_validator("public_url")
    @classmethod
    def _public_url_has_no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Self:
        data_dir = self.data_dir.resolve()
        self.data_dir = data_dir
        if not self.database_url:
            self.database_url = f"sqlite:///{data_dir / 'uvm-reporting.sqlite3'}"
        if not self.storage_url:
            self.storage_url = str(data_dir / "storage")
        if self.keys_dir == Path():
            self.keys_dir = data_dir / "keys"
        if self.https_required and not self.public_url.startswith("https://"):
            raise ValueError(
                f"public_url {self.public_url} is not https:// (required by the {self.profile} profile): "
                "set UVM_REPORTING_PUBLIC_URL=https://..., or UVM_REPORTING_REQUIRE_HTTPS=false"
            )
        return self

    @property
    def production(self) -> bool:
        return self.profile == "production"

    @property
    def introspection_enabled(self) -> bool:
        return not self.production if self.graphql_introspection is None else self.graphql_introspection

    @property
    def explorer_enabled(self) -> bool:
        return not self.production if self.graphql_explorer is None else self.graphql_explorer

    @property
    def https_required(self) -> bool:
        return self.production if self.require_https is None else self.require_https

    @property
    def keys_generated_at_start(self) -> bool:
        return not self.production if self.generate_keys is None else self.generate_keys

    def profile_summary(self) -> str:
        """One line saying the profile and what it turned on or off."""

        def on(value: bool) -> str:
            return "on" if value else "off"

        return (
            f"profile {self.profile}: GraphQL introspection {on(self.introspection_enabled)}, "
            f"explorer {on(self.explorer_enabled)}, https public URL required {on(self.https_required)}, "
            f"keys made at start {on(self.keys_generated_at_start)}"
        )

    @property
    def max_active_runs(self) -> int | None:
        """The per-account cap of queued plus running runs; None when there is none."""
        return self.max_active_runs_per_account or None

    @property
    def min_schedule_interval(self) -> timedelta:
        return timedelta(minutes=self.min_schedule_interval_minutes)

    @property
    def result_retention(self) -> timedelta | None:
        """How long a result file is kept; None: forever."""
        return timedelta(seconds=self.result_retention_seconds) if self.result_retention_seconds else None

    @property
    def run_history(self) -> timedelta | None:
        """How long a finished run's record is kept; None: forever."""
        return timedelta(days=self.run_history_days) if self.run_history_days else None

    @property
    def idempotency_key_lifetime(self) -> timedelta:
        return timedelta(seconds=self.idempotency_key_seconds)

    @property
    def token_issuer(self) -> str:
        """The ``iss`` of our tokens: this deployment's URL, which differs per region."""
        return self.public_url

    @property
    def token_audience(self) -> str:
        """The ``aud`` of our tokens: the Reporting API of this region."""
        return f"uvm-reporting-api:{self.region}"
