"""The deployment's token-signing keys: EC P-256 private keys kept as PEM files in a key ring.

``uvm-reporting keys rotate`` adds a key that signs from then on; older keys keep verifying
until the last tokens they signed have expired (key_ring.py). The key id is the key's RFC 7638
JWK thumbprint, so it is stable and needs no bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from uvm_reporting.key_ring import KeyFileError, KeyKind, KeyRing
from uvm_reporting.settings import Settings

ALGORITHM = "ES256"
CURVE = "P-256"
LEEWAY_SECONDS = 30
"""Clock skew tolerated on a token's nbf and exp."""

TOKEN_KEYS_FOLDER = "token-signing"  # noqa: S105 - a folder name
LEGACY_KEY_FILE = "token-signing-key.pem"
"""The single key file of earlier versions, in the keys folder: it verifies until rotated out."""


class SigningKeyError(KeyFileError):
    """A signing key file exists but cannot be used."""


def _generate() -> bytes:
    return ECKey.generate_key(CURVE).as_pem(private=True)


def _load(pem: bytes, path: Path) -> tuple[ECKey, str]:
    try:
        key = ECKey.import_key(pem)
    except (JoseError, ValueError, TypeError) as error:
        raise SigningKeyError(f"The token signing key {path} is not a readable PEM EC key: {error}") from error
    if not key.is_private or key.curve_name != CURVE:
        raise SigningKeyError(f"The token signing key {path} must be an EC {CURVE} private key.")
    # Reimport with the parameters the JWKS publishes, so tokens and JWKS agree on the kid.
    kid = key.thumbprint()
    return ECKey.import_key(pem, {"kid": kid, "alg": ALGORITHM, "use": "sig"}), kid


TOKEN_SIGNING: KeyKind[ECKey] = KeyKind(name="token-signing", suffix="pem", generate=_generate, load=_load)


def token_key_ring(settings: Settings) -> KeyRing[ECKey]:
    """The deployment's token-signing keys, as ``settings`` place and time them (not checked for
    signing yet: ``ready_to_sign``)."""
    return KeyRing(
        settings.keys_dir / TOKEN_KEYS_FOLDER,
        TOKEN_SIGNING,
        # A process that has not seen the rotation yet may sign with the old key for up to
        # reload_seconds; its tokens live token_lifetime_seconds, plus the clock leeway.
        grace_seconds=settings.token_lifetime_seconds + settings.key_reload_seconds + LEEWAY_SECONDS,
        reload_seconds=settings.key_reload_seconds,
        legacy_file=settings.keys_dir / LEGACY_KEY_FILE,
    )


def fixed_key_ring(key: ECKey) -> KeyRing[ECKey]:
    """A ring of this one key (tests, tools)."""
    return KeyRing.fixed(key, key.thumbprint(), TOKEN_SIGNING)


def public_jwks(keys: Iterable[ECKey]) -> dict[str, Any]:
    """A JWK Set (RFC 7517 §5) with the public half of each key, for ``/.well-known/jwks.json``."""
    return {"keys": [public_jwk(key) for key in keys]}


def public_jwk(key: ECKey) -> dict[str, Any]:
    """The public JWK of ``key``: ``kty``, ``crv``, ``x``, ``y``, ``kid``, ``alg``, ``use``."""
    public = key.as_dict(private=False)
    # Build the dict from named members only, so a private member can never slip through.
    return {
        "kty": public["kty"],
        "crv": public["crv"],
        "x": public["x"],
        "y": public["y"],
        "kid": key.thumbprint(),
        "alg": ALGORITHM,
        "use": "sig",
    }
