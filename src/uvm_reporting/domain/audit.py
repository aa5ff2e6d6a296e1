"""Audit events: who did what to which object of an account, when, from where.

An event names its action with a stable dotted name (``ACTIONS``), its actor (an API client,
a signed-in user once the web UI has them, the operator's CLI, the scheduler) and its target.
``details`` is a small flat JSON object of plain values. Nothing secret is ever recorded: a
client secret, an access token, a download link's signature, a password. ``AuditEvent`` refuses
details whose keys name such a thing (``secretId`` is fine: an id), as a guard against a careless caller; values must be
chosen by the caller with the same care (ids, names, flags, never credentials).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

DetailValue = str | int | float | bool | None


class ActorKind(StrEnum):
    API_CLIENT = "api_client"
    USER = "user"
    OPERATOR = "operator"
    SCHEDULER = "scheduler"


class Action(StrEnum):
    """The stable names of recorded actions. Add new ones here; never rename one."""

    TOKEN_ISSUED = "token.issued"  # noqa: S105 - an action's name
    AUTH_FAILED = "auth.failed"
    RUN_STARTED = "run.started"
    RUN_JOINED = "run.joined"
    RUN_DOWNLOADED = "run.downloaded"
    RUN_CANCELLED = "run.cancelled"
    REPORT_CREATED = "report.created"
    REPORT_UPDATED = "report.updated"
    REPORT_ACCESS_CHANGED = "report.access_changed"
    REPORT_SCHEDULE_CHANGED = "report.schedule_changed"
    CLIENT_CREATED = "client.created"
    CLIENT_REVOKED = "client.revoked"
    CLIENT_SECRET_ADDED = "client.secret_added"  # noqa: S105 - an action's name
    CLIENT_SECRET_REVOKED = "client.secret_revoked"  # noqa: S105 - an action's name
    KEY_ROTATED = "key.rotated"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"


ACTIONS = frozenset(action.value for action in Action)

_ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Keys of ``details`` that would name a credential are refused, but for what only identifies or
# counts one (``secretId``, ``token_count``).
_SECRET_KEY = re.compile(r"secret|token|password|passwd|signature|authorization|credential|private", re.IGNORECASE)
_HARMLESS_SUFFIX = re.compile(r"(_?id|_?ids|_?count|_?kind)$", re.IGNORECASE)
MAX_DETAILS = 16
MAX_DETAIL_TEXT = 500


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, and from where: the source IP and request id of an HTTP request (None from
    the CLI or the scheduler)."""

    kind: ActorKind
    id: str | None = None
    source_ip: str | None = None
    request_id: str | None = None

    @classmethod
    def api_client(cls, client_id: str, *, source_ip: str | None = None, request_id: str | None = None) -> Actor:
        return cls(ActorKind.API_CLIENT, client_id, source_ip, request_id)

    @classmethod
    def operator(cls, name: str | None = None) -> Actor:
        """The operator at the CLI; ``name`` is the local user name when known."""
        return cls(ActorKind.OPERATOR, name)

    @classmethod
    def scheduler(cls) -> Actor:
        return cls(ActorKind.SCHEDULER)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened. ``account_id`` is None for deployment-wide events (a signing
    key rotated), which only the operator sees."""

    account_id: str | None
    action: str
    actor: Actor
    target_kind: str | None = None
    target_id: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not _ACTION_NAME.match(self.action):
            raise ValueError(f"audit action {self.action!r} is not a dotted lower-case name such as 'report.created'")
        if len(self.details) > MAX_DETAILS:
            raise ValueError(f"audit details hold at most {MAX_DETAILS} entries")
        for key, value in self.details.items():
            if _SECRET_KEY.search(key) and not _HARMLESS_SUFFIX.search(key):
                raise ValueError(f"audit details must not record secrets: key {key!r} is refused")
            if not isinstance(value, DetailValue):
                raise ValueError(f"audit detail {key!r} must be a plain JSON value, not {type(value).__name__}")
            if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
                raise ValueError(f"audit detail {key!r} is longer than {MAX_DETAIL_TEXT} characters")
