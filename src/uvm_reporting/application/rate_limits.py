"""Named rate limits, counted in storage every API process of a deployment shares.

The limits (per minute, fixed windows of the ``limits`` library; ``0`` turns one off):

- token requests per client id and per source IP: ``POST /oauth2/token`` checks both after
  reading the request and before any Argon2 work, so a flood of guesses or junk client ids
  costs a counter increment each, not a 19 MiB hash;
- ``processReport`` per account: checked before the run is enqueued;
- login attempts per email and per source IP: for the web UI's sign-in when it lands
  (``check_login``); no endpoint uses them yet.

Where the counters live (``rate_limit_storage_url``): in this process's memory for the embedded
default (SQLite, one process); in the deployment's own database for PostgreSQL, so a limit holds
across every API process without anything new to run (database/rate_limit_counters.py); or any
storage URI of the ``limits`` library, e.g. ``redis://127.0.0.1:6379`` (with the ``redis``
package installed).

A fixed window lets a caller spend a window's allowance at its end and the next one's at the
start: at most twice the limit in any minute. When the storage fails, the request is let
through and the failure logged: the limits protect the service, they must not take it down.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine

from uvm_reporting.database.rate_limit_counters import DatabaseRateLimitStorage
from uvm_reporting.errors import RateLimited
from uvm_reporting.settings import Settings

log = logging.getLogger(__name__)

DATABASE_STORAGE = "database"
MEMORY_STORAGE = "memory://"
# Identifiers longer than this (a junk client id, an email) are hashed into the counter's key.
_MAX_IDENTIFIER_LENGTH = 64


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One named limit: at most ``per_minute`` events per key and minute; 0 is no limit."""

    name: str
    per_minute: int
    what: str
    """The counted events, for messages: 'token requests for this client id'."""

    @property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerMinute(max(self.per_minute, 1), namespace="uvm")


class RateLimits:
    """The deployment's limits over one counter storage."""

    def __init__(
        self,
        storage: Storage,
        *,
        token_requests_per_client: int = 30,
        token_requests_per_ip: int = 120,
        process_reports_per_account: int = 60,
        login_attempts_per_email: int = 10,
        login_attempts_per_ip: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)
        self._clock = clock
        self.token_per_client = RateLimit(
            "token-client", token_requests_per_client, "token requests for this client id"
        )
        self.token_per_ip = RateLimit("token-ip", token_requests_per_ip, "token requests from this address")
        self.process_report_per_account = RateLimit(
            "process-report", process_reports_per_account, "processReport calls for this account"
        )
        self.login_per_email = RateLimit("login-email", login_attempts_per_email, "sign-in attempts for this email")
        self.login_per_ip = RateLimit("login-ip", login_attempts_per_ip, "sign-in attempts from this address")

    @property
    def in_memory(self) -> bool:
        """Whether a check is a few microseconds without I/O (may run on an event loop)."""
        return isinstance(self.storage, MemoryStorage)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> RateLimits:
        return cls(
            rate_limit_storage(settings.rate_limit_storage_url, engine),
            token_requests_per_client=settings.token_requests_per_minute_per_client,
            token_requests_per_ip=settings.token_requests_per_minute_per_ip,
            process_reports_per_account=settings.process_reports_per_minute_per_account,
            login_attempts_per_email=settings.login_attempts_per_minute_per_email,
            login_attempts_per_ip=settings.login_attempts_per_minute_per_ip,
        )

    def check_token_request(self, client_id: str, source_ip: str | None) -> None:
        """Count a token request; raises ``RateLimited`` when its address or client id is over
        its limit. The address is counted first: a flood of junk client ids from one address
        is refused by it."""
        self.hit(self.token_per_ip, address_key(source_ip))
        self.hit(self.token_per_client, client_id)

    def check_process_report(self, account_id: str) -> None:
        self.hit(self.process_report_per_account, account_id)

    def check_login(self, email: str, source_ip: str | None) -> None:
        """For the web UI's sign-in (not wired to any endpoint yet): count an attempt."""
        self.hit(self.login_per_ip, address_key(source_ip))
        self.hit(self.login_per_email, _email_key(email))

    def clear_login(self, email: str) -> None:
        """Forget an email's failed attempts, after its owner signed in."""
        if self.login_per_email.per_minute > 0:
            self._limiter.clear(self.login_per_email.item, self.login_per_email.name, _short(_email_key(email)))

    def hit(self, limit: RateLimit, identifier: str) -> None:
        """Count one event of ``limit`` for ``identifier``; raises ``RateLimited`` over it."""
        if limit.per_minute <= 0:
            return
        key = _short(identifier)
        item = limit.item
        try:
            if self._limiter.hit(item, limit.name, key):
                return
            reset_at = self._limiter.get_window_stats(item, limit.name, key).reset_time
        except Exception:
            log.exception("rate-limit storage failed; letting the request through (%s)", limit.name)
            return
        retry_after = max(1, math.ceil(reset_at - self._clock()))
        raise RateLimited(
            f"Too many {limit.what}: at most {limit.per_minute} a minute. Retry in {retry_after} s.",
            limit=limit.name,
            retry_after_seconds=retry_after,
        )


def rate_limit_storage(url: str, engine: Engine) -> Storage:
    """The counters' storage for ``rate_limit_storage_url`` (see the module's docstring)."""
    if not url:
        url = DATABASE_STORAGE if engine.dialect.name == "postgresql" else MEMORY_STORAGE
    if url == DATABASE_STORAGE:
        return DatabaseRateLimitStorage(engine)
    if url == MEMORY_STORAGE:
        return MemoryStorage()
    storage = storage_from_string(url)
    if not isinstance(storage, Storage):
        raise ValueError(f"rate_limit_storage_url {url!r} names an asynchronous storage; use its plain scheme")
    return storage


def address_key(source_ip: str | None) -> str:
    """What an address is counted under: itself, or for IPv6 its /64 network, which one
    subscriber usually holds whole (one per address would be trivial to dodge)."""
    if not source_ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _email_key(email: str) -> str:
    return email.strip().lower()


def _short(identifier: str) -> str:
    if len(identifier) <= _MAX_IDENTIFIER_LENGTH:
        return identifier
    return "sha256:" + hashlib.sha256(identifier.encode("utf-8", "replace")).hexdigest()
