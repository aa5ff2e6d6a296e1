"""One typed settings object, read once at start-up from ``UVM_REPORTING_*`` env vars.

The defaults give the embedded mode: a SQLite file and a storage folder under ``./var`` of
the working directory. Tests build their own ``Settings(...)`` instead of editing the
environment.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Self

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
    signing_key_file: Path = Field(
        default=Path(), description="PEM private key signing access tokens; created when missing."
    )
    link_key_file: Path = Field(default=Path(), description="Secret key signing download links; created when missing.")
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
    run_lease_seconds: int = Field(default=60, ge=5)
    run_max_attempts: int = Field(default=3, ge=1)
    max_active_runs_per_account: int = Field(
        default=100,
        ge=0,
        description="Runs one account may have queued or running at once; processReport over it gets "
        "QUOTA_EXCEEDED, a scheduled run over it is recorded as Failed with that code. 0: no cap.",
    )
    min_schedule_interval_minutes: int = Field(
        default=15,
        ge=0,
        le=1440,
        description="Shortest time between two fire times a saved schedule may have (a cron expression "
        "firing more often is refused). 0: no minimum.",
    )
    log_level: str = "INFO"

    @field_validator("region")
    @classmethod
    def _region_is_a_name(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError("region must be a short lower-case name such as 'us01' or 'eu'")
        return value

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
        if self.signing_key_file == Path():
            self.signing_key_file = data_dir / "keys" / "token-signing-key.pem"
        if self.link_key_file == Path():
            self.link_key_file = data_dir / "keys" / "download-link.key"
        return self

    @property
    def max_active_runs(self) -> int | None:
        """The per-account cap of queued plus running runs; None when there is none."""
        return self.max_active_runs_per_account or None

    @property
    def min_schedule_interval(self) -> timedelta:
        return timedelta(minutes=self.min_schedule_interval_minutes)

    @property
    def token_issuer(self) -> str:
        """The ``iss`` of our tokens: this deployment's URL, which differs per region."""
        return self.public_url

    @property
    def token_audience(self) -> str:
        """The ``aud`` of our tokens: the Reporting API of this region."""
        return f"uvm-reporting-api:{self.region}"
