"""Expiring download links signed with HMAC-SHA256, served by our own ``/downloads`` route.

A link names the run, the API client it was issued to and its expiry; the signature covers all
three, so none can be changed. The ``/downloads`` route serves a link only while that client's
access lasts (api/download_routes.py). The keys are a ring that rotates (key_ring.py): a link
names the key that signed it (``kid``), and a key keeps verifying until the last links it signed
have expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from uvm_reporting.errors import Forbidden
from uvm_reporting.key_ring import KeyFileError, KeyKind, KeyRing
from uvm_reporting.settings import Settings

RECENT_LINKS_KEPT = 4096
"""Links of the current second kept per signer (one per run and client polled)."""


@dataclass(frozen=True, slots=True)
class SignedLink:
    url: str
    expires_at: datetime


LINK_KEYS_FOLDER = "download-links"
LEGACY_KEY_FILE = "download-link.key"
_MIN_KEY_BYTES = 32


def link_key_id(key: bytes) -> str:
    """A link key's public id: a hash of the key, which tells nothing of it."""
    return hashlib.sha256(b"uvm-reporting download-link key id\n" + key).hexdigest()[:16]


def _load_key(content: bytes, path: Path) -> tuple[bytes, str]:
    if len(content) < _MIN_KEY_BYTES:
        raise KeyFileError(f"The download-link key {path} must hold at least {_MIN_KEY_BYTES} bytes.")
    return content, link_key_id(content)


DOWNLOAD_LINK: KeyKind[bytes] = KeyKind(
    name="download-link", suffix="key", generate=lambda: secrets.token_bytes(32), load=_load_key
)


def link_key_ring(settings: Settings) -> KeyRing[bytes]:
    """The deployment's download-link keys (not checked for signing yet: ``ready_to_sign``)."""
    return KeyRing(
        settings.keys_dir / LINK_KEYS_FOLDER,
        DOWNLOAD_LINK,
        # A process that has not seen the rotation yet may sign for up to reload_seconds more.
        grace_seconds=settings.download_link_lifetime_seconds + settings.key_reload_seconds,
        reload_seconds=settings.key_reload_seconds,
        legacy_file=settings.keys_dir / LEGACY_KEY_FILE,
    )


class DownloadLinkSigner:
    def __init__(self, keys: KeyRing[bytes] | bytes, public_url: str, lifetime_seconds: int) -> None:
        if isinstance(keys, bytes):
            if len(keys) < _MIN_KEY_BYTES:
                raise ValueError("the download-link key must hold at least 32 bytes")
            keys = KeyRing.fixed(keys, link_key_id(keys), DOWNLOAD_LINK)
        self.keys = keys
        self._public_url = public_url.rstrip("/")
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._recent: dict[tuple[str, str], tuple[int, str, SignedLink]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadLinkSigner:
        keys = link_key_ring(settings).ready_to_sign(generate_missing=settings.keys_generated_at_start)
        return cls(keys, settings.public_url, settings.download_link_lifetime_seconds)

    def sign(self, run_id: str, client_id: str, now: datetime | None = None) -> SignedLink:
        """A link to the file of ``run_id``, issued to the API client ``client_id``."""
        expires = int((now.timestamp() if now is not None else time.time()) + self._lifetime.total_seconds())
        # Expiry is in whole seconds, so every call within a second signs the same link: a
        # client polling every few milliseconds gets it from here.
        signing = self.keys.signing()
        recent = self._recent.get((run_id, client_id))
        if recent is not None and recent[:2] == (expires, signing.key_id):
            return recent[2]
        query = urlencode(
            {
                "client": client_id,
                "expires": expires,
                "kid": signing.key_id,
                "signature": self._signature(signing.key, run_id, client_id, expires),
            }
        )
        link = SignedLink(
            url=f"{self._public_url}/downloads/{run_id}?{query}", expires_at=datetime.fromtimestamp(expires, UTC)
        )
        if len(self._recent) >= RECENT_LINKS_KEPT:
            self._recent.clear()
        self._recent[(run_id, client_id)] = (expires, signing.key_id, link)
        return link

    def verify(
        self,
        run_id: str,
        client_id: str,
        expires: str,
        signature: str,
        now: datetime | None = None,
        *,
        kid: str | None = None,
    ) -> None:
        """Raise Forbidden unless the link is intact and not expired; ``kid`` names its key.
        Whether ``client_id`` still has access is the caller's to check."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise Forbidden("This download link is malformed.") from None
        at = (now or datetime.now(UTC)).timestamp()
        key = self.keys.find(kid, at) if kid else self.keys.legacy()
        if key is None:
            raise Forbidden(
                "This download link is not valid (its key is unknown or retired). "
                "Call getReportRunStatus again for a fresh link."
            )
        expected = self._signature(key.key, run_id, client_id, expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Forbidden("This download link is not valid (its signature does not match).")
        if at >= expires_at:
            raise Forbidden("This download link has expired. Call getReportRunStatus again for a fresh link.")

    @staticmethod
    def _signature(key: bytes, run_id: str, client_id: str, expires: int) -> str:
        # Each field is length-prefixed, so no two (run, client, expiry) sign the same message.
        fields = (run_id, client_id, str(expires))
        message = ("download-v2\n" + "".join(f"{len(f)}:{f}\n" for f in fields)).encode()
        mac = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
