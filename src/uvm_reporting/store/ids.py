"""Identifiers and clocks used by the store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_id() -> str:
    """A random UUID4 string: unguessable, so ids never reveal counts or neighbours."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)
