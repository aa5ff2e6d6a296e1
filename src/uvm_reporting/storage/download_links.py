"""Expiring download links signed with HMAC-SHA256, served by our own ``/downloads`` route.

A link names the run, the API client it was issued to and its expiry; the signature covers all
three, so none can be changed. The ``/downloads`` route serves a link only while that client's
access lasts (api/download_routes.py). The key lives in a file of its own (created with mode
0600 when missing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from uvm_reporting.errors import Forbidden

RECENT_LINKS_KEPT = 4096
"""Links of the current second kept per signer (one per run and client polled)."""


@dataclass(frozen=True, slots=True)
class SignedLink:
    url: str
    expires_at: datetime


class DownloadLinkSigner:
    def __init__(self, key: bytes, public_url: str, lifetime_seconds: int) -> None:
        if len(key) < 32:
            raise ValueError("the download-link key must hold at least 32 bytes")
        self._key = key
        self._public_url = public_url.rstrip("/")
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._recent: dict[tuple[str, str], tuple[int, SignedLink]] = {}

    @classmethod
    def from_key_file(cls, path: Path, public_url: str, lifetime_seconds: int) -> DownloadLinkSigner:
        return cls(load_or_create_secret_key(path), public_url, lifetime_seconds)

    def sign(self, run_id: str, client_id: str, now: datetime | None = None) -> SignedLink:
        """A link to the file of ``run_id``, issued to the API client ``client_id``."""
        expires = int((now.timestamp() if now is not None else time.time()) + self._lifetime.total_seconds())
        # Expiry is in whole seconds, so every call within a second signs the same link: a
        # client polling every few milliseconds gets it from here.
        recent = self._recent.get((run_id, client_id))
        if recent is not None and recent[0] == expires:
            return recent[1]
        query = urlencode(
            {"client": client_id, "expires": expires, "signature": self._signature(run_id, client_id, expires)}
        )
        link = SignedLink(
            url=f"{self._public_url}/downloads/{run_id}?{query}", expires_at=datetime.fromtimestamp(expires, UTC)
        )
        if len(self._recent) >= RECENT_LINKS_KEPT:
            self._recent.clear()
        self._recent[(run_id, client_id)] = (expires, link)
        return link

    def verify(self, run_id: str, client_id: str, expires: str, signature: str, now: datetime | None = None) -> None:
        """Raise Forbidden unless the link is intact and not expired. Whether ``client_id``
        still has access is the caller's to check."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise Forbidden("This download link is malformed.") from None
        expected = self._signature(run_id, client_id, expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Forbidden("This download link is not valid (its signature does not match).")
        if (now or datetime.now(UTC)).timestamp() >= expires_at:
            raise Forbidden("This download link has expired. Call getReportRunStatus again for a fresh link.")

    def _signature(self, run_id: str, client_id: str, expires: int) -> str:
        # Each field is length-prefixed, so no two (run, client, expiry) sign the same message.
        fields = (run_id, client_id, str(expires))
        message = ("download-v2\n" + "".join(f"{len(f)}:{f}\n" for f in fields)).encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def load_or_create_secret_key(path: Path) -> bytes:
    """Read a 32-byte secret from ``path``; create it (mode 0600, atomically) when missing."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    try:
        # link() fails if another process created the key first; then we use theirs.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes()
