"""Access tokens: ES256-signed JWTs (RFC 7519) issued by ``/oauth2/token``.

A token names its client (``sub``), the client's account (``account_id``) and this
deployment (``iss`` = public URL, ``aud`` = the region's API, ``region``). Each deployment
(region) has its own signing keys, so a token from another region is refused with a message
that says where to get one instead. The keys rotate (auth/signing_keys.py): a token names its
key in ``kid``, and every key that still verifies is in the JWKS.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import ECKey

from uvm_reporting.auth.signing_keys import ALGORITHM, LEEWAY_SECONDS, public_jwks, token_key_ring
from uvm_reporting.domain.timestamps import format_utc, utc_now
from uvm_reporting.errors import Unauthenticated
from uvm_reporting.key_ring import KeyRing
from uvm_reporting.settings import Settings

__all__ = ["LEEWAY_SECONDS", "AccessClaims", "AccessTokens", "InvalidToken", "IssuedToken"]

_CACHE_SIZE = 4096
# Ours are ~600 characters; anything far larger is not worth parsing.
_MAX_TOKEN_LENGTH = 8192


class InvalidToken(Unauthenticated):
    """The bearer token cannot be used here; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True, slots=True)
class AccessClaims:
    client_id: str
    account_id: str
    token_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: AccessClaims
    valid_from: float
    expires_at: float


class AccessTokens:
    """Issues and verifies this deployment's access tokens."""

    def __init__(
        self,
        keys: KeyRing[ECKey],
        *,
        issuer: str,
        audience: str,
        region: str,
        lifetime_seconds: int,
        cache_size: int = _CACHE_SIZE,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.region = region
        self.lifetime_seconds = lifetime_seconds
        self._cache_size = cache_size
        self._cache: dict[str, _Verified] = {}
        self._cache_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            token_key_ring(settings).ready_to_sign(generate_missing=settings.keys_generated_at_start),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            region=settings.region,
            lifetime_seconds=settings.token_lifetime_seconds,
        )

    def issue(self, client_id: str, account_id: str, now: datetime | None = None) -> IssuedToken:
        """A new token for ``client_id`` of ``account_id``, valid from ``now`` (aware; default: now)."""
        issued_at = math.floor((now or utc_now()).timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "account_id": account_id,
            "region": self.region,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.lifetime_seconds,
            "jti": secrets.token_urlsafe(16),
        }
        signing = self.keys.signing()
        token = jwt.encode({"alg": ALGORITHM, "kid": signing.key_id}, claims, signing.key, algorithms=[ALGORITHM])
        return IssuedToken(access_token=token, expires_in=self.lifetime_seconds)

    def verify(self, token: str, now: datetime | None = None) -> AccessClaims:
        """The claims of ``token``, or ``InvalidToken`` saying why it cannot be used."""
        at = (now or utc_now()).timestamp()
        with self._cache_lock:
            cached = self._cache.get(token)
        # A cached result stands only inside [nbf - leeway, exp): never past the token's exp.
        if cached is not None and cached.valid_from <= at < cached.expires_at:
            return cached.claims
        verified = self._verify_uncached(token, math.floor(at))
        with self._cache_lock:
            self._cache.pop(token, None)
            if at < verified.expires_at:
                while len(self._cache) >= self._cache_size:
                    # Oldest first: entries were added about in the order they expire.
                    del self._cache[next(iter(self._cache))]
                self._cache[token] = verified
        return verified.claims

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this deployment's tokens (a JWK Set)."""
        return public_jwks(key.key for key in self.keys.verifying())

    def _verify_uncached(self, token: str, at: int) -> _Verified:
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken(
                "the access token is too long to be one of ours; send the access_token that /oauth2/token returned"
            )
        # Until the signature is checked, nothing of the token is echoed: a message (and the
        # WWW-Authenticate header it goes into) says only what is wrong, in our own words.
        try:
            compact = jws.extract_compact(token.encode("ascii"))
            header = compact.headers()
            alg, kid = header.get("alg"), header.get("kid")
        except (JoseError, ValueError, TypeError, AttributeError, RecursionError) as error:
            raise InvalidToken(
                "the access token is not a well-formed JWT; send the access_token that "
                "/oauth2/token returned, as 'Authorization: Bearer <token>'"
            ) from error
        if alg != ALGORITHM:
            raise InvalidToken(
                f"the access token is not signed with {ALGORITHM}, and this deployment only accepts {ALGORITHM}; "
                "request a token from this deployment's /oauth2/token"
            )
        found = self.keys.find(kid, at) if isinstance(kid, str) else None
        if found is None:
            raise InvalidToken(
                "this token was not signed by this deployment (is it another region's?); "
                f"request a token from this deployment's /oauth2/token (region {self.region})"
            )
        try:
            valid = jws.validate_compact(compact, found.key, algorithms=[ALGORITHM])
        except JoseError:
            valid = False
        if not valid:
            raise InvalidToken(
                "the access token's signature is not valid (was it altered?); request a new one from /oauth2/token"
            )
        claims = _claims(compact.payload)  # verified now: the signature matched, we wrote them
        self._check_claims(claims, at)
        expires_at = float(claims["exp"])
        return _Verified(
            claims=AccessClaims(
                client_id=claims["sub"],
                account_id=claims["account_id"],
                token_id=claims["jti"],
                expires_at=datetime.fromtimestamp(expires_at, UTC),
            ),
            valid_from=float(claims["nbf"]) - LEEWAY_SECONDS,
            expires_at=expires_at,
        )

    def _check_claims(self, claims: dict[str, Any], at: int) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=at,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            region={"essential": True, "value": self.region},
            sub={"essential": True},
            account_id={"essential": True},
            jti={"essential": True},
            iat={"essential": True},
            nbf={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as error:
            expired_at = format_utc(datetime.fromtimestamp(claims["exp"], UTC))
            raise InvalidToken(f"the access token expired at {expired_at}; request a new one") from error
        except MissingClaimError as error:
            raise InvalidToken(
                f"the access token lacks the claims {error.claim}; request a token from this deployment's /oauth2/token"
            ) from error
        except InvalidClaimError as error:
            raise InvalidToken(self._invalid_claim_message(error.claim, claims)) from error
        if not isinstance(claims["account_id"], str):
            raise InvalidToken(self._invalid_claim_message("account_id", claims))

    def _invalid_claim_message(self, claim: str, claims: dict[str, Any]) -> str:
        if claim in ("iss", "aud", "region"):
            return self._foreign_message(claims)
        if claim in ("nbf", "iat"):
            return (
                "the access token is not valid yet (its iat/nbf is in the future); "
                "check this server's and the issuer's clocks, then request a new one"
            )
        return f"the access token's {claim} claim is not valid; request a new one from /oauth2/token"

    def _foreign_message(self, claims: dict[str, Any]) -> str:
        # The claims are verified (signed with our key): a former public URL or region of ours.
        issuer, region = claims.get("iss"), claims.get("region")
        ours = f"request a token from this deployment's /oauth2/token (region {self.region})"
        if not isinstance(issuer, str):
            return f"this token was not issued by this deployment; {ours}"
        origin = f" (region {_shown(region)})" if isinstance(region, str) else ""
        return f"this token was issued by {_shown(issuer)}{origin}; {ours}"


def _claims(payload: bytes | None) -> dict[str, Any]:
    try:
        claims = json.loads(payload or b"")
    except (ValueError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _shown(value: object) -> str:
    """A claim's value, cut short and stripped of control characters for messages."""
    text = value if isinstance(value, str) else repr(value)
    return "".join(character for character in text[:120] if character.isprintable())
