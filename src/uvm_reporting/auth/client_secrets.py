"""API client identifiers and secrets: generation, and hashing with Argon2id.

The database keeps only an Argon2id hash of each secret. The parameters follow the OWASP
password-storage minimum (19 MiB, 2 passes, 1 lane): one verification costs roughly
10-30 ms, which bounds guessing while keeping the token endpoint responsive.
"""

from __future__ import annotations

import os
import secrets
import threading
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

CLIENT_ID_PREFIX = "uvmc_"
CLIENT_SECRET_PREFIX = "uvms_"  # noqa: S105 - a public prefix, not a secret

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# Each hash holds ~19 MiB while it runs; a burst of token requests must not multiply that
# by the size of the thread pool.
_HASHING_SLOTS = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


def new_client_id() -> str:
    """A public, unguessable client id: ``uvmc_`` and 22 URL-safe characters (128 bits)."""
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(16)


def new_client_secret() -> str:
    """A client secret: ``uvms_`` and 43 URL-safe characters (256 bits)."""
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The Argon2id hash (PHC string, with its own salt and parameters) of ``secret``."""
    with _HASHING_SLOTS:
        return _HASHER.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    """Whether ``secret`` matches ``secret_hash``; a malformed hash never matches."""
    with _HASHING_SLOTS:
        try:
            return _HASHER.verify(secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(secret_hash: str) -> bool:
    """Whether ``secret_hash`` was made with other parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(secret_hash)
    except InvalidHashError:
        return False


def verify_dummy_secret(secret: str) -> bool:
    """Spend the time of a real verification, for a client id that does not exist.

    Without it, an unknown client id answers measurably faster than a known one with a wrong
    secret, which tells a caller which ids exist. Always returns ``False``.
    """
    verify_secret(_dummy_hash(), secret)
    return False


@cache
def _dummy_hash() -> str:
    return hash_secret(new_client_secret())
