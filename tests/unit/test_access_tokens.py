"""Access tokens: issue and verify, refusal messages, and the verification cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from uvm_reporting.auth.access_tokens import LEEWAY_SECONDS, AccessTokens, InvalidToken
from uvm_reporting.auth.signing_keys import SigningKeyError
from uvm_reporting.errors import Unauthenticated
from uvm_reporting.settings import Settings

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def tokens(settings: Settings) -> AccessTokens:
    return AccessTokens.from_settings(settings)


def segments(token: str) -> list[str]:
    parts = token.split(".")
    assert len(parts) == 3
    return parts


def decode_segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def encode_segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_round_trip_gives_back_client_and_account(tokens: AccessTokens, settings: Settings) -> None:
    issued = tokens.issue("uvmc_abc", "account-1", now=NOW)
    assert issued.expires_in == settings.token_lifetime_seconds == 3600

    claims = tokens.verify(issued.access_token, now=NOW + timedelta(minutes=5))

    assert claims.client_id == "uvmc_abc"
    assert claims.account_id == "account-1"
    assert claims.expires_at == NOW + timedelta(seconds=3600)
    assert claims.token_id


def test_token_carries_the_documented_header_and_claims(tokens: AccessTokens, settings: Settings) -> None:
    header_segment, payload_segment, _ = segments(tokens.issue("uvmc_abc", "account-1", now=NOW).access_token)
    header, payload = decode_segment(header_segment), decode_segment(payload_segment)

    assert header["alg"] == "ES256"
    assert header["kid"] == tokens.jwks()["keys"][0]["kid"]
    issued_at = int(NOW.timestamp())
    assert payload == {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "uvmc_abc",
        "account_id": "account-1",
        "region": "us01",
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + 3600,
        "jti": payload["jti"],
    }
    assert len(payload["jti"]) >= 16


def test_every_token_has_its_own_id(tokens: AccessTokens) -> None:
    first = tokens.verify(tokens.issue("c", "a", now=NOW).access_token, now=NOW)
    second = tokens.verify(tokens.issue("c", "a", now=NOW).access_token, now=NOW)
    assert first.token_id != second.token_id


def test_jwks_holds_only_the_public_key(tokens: AccessTokens) -> None:
    (key,) = tokens.jwks()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"] == ECKey.import_key(key).thumbprint()


def test_the_key_survives_a_restart(tokens: AccessTokens, settings: Settings) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    restarted = AccessTokens.from_settings(settings)
    assert restarted.jwks() == tokens.jwks()
    assert restarted.verify(token, now=NOW).client_id == "c"


def test_unusable_key_file_is_reported_not_replaced(settings: Settings) -> None:
    key_file = settings.keys_dir / "token-signing" / "generated.pem"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("not a key")
    key_file.chmod(0o600)
    with pytest.raises(SigningKeyError, match=str(key_file)):
        AccessTokens.from_settings(settings)
    assert key_file.read_text() == "not a key"


def test_expired_token_says_when_and_what_to_do(tokens: AccessTokens) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    with pytest.raises(InvalidToken) as refusal:
        tokens.verify(token, now=NOW + timedelta(seconds=3600 + LEEWAY_SECONDS + 1))
    assert refusal.value.message == "the access token expired at 2026-03-01T11:00:00Z; request a new one"
    assert isinstance(refusal.value, Unauthenticated)
    assert refusal.value.code == "UNAUTHENTICATED"


def test_small_clock_skew_is_tolerated(tokens: AccessTokens) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    assert tokens.verify(token, now=NOW - timedelta(seconds=LEEWAY_SECONDS - 1)).client_id == "c"
    with pytest.raises(InvalidToken, match="not valid yet"):
        tokens.verify(token, now=NOW - timedelta(seconds=LEEWAY_SECONDS + 5))


def test_token_of_another_issuer_with_our_key_is_refused(tmp_path: Path, settings: Settings) -> None:
    # Same key file, other public URL: e.g. a deployment whose URL changed.
    elsewhere = Settings(
        data_dir=tmp_path / "other",
        keys_dir=settings.keys_dir,
        public_url="https://old.example.com",
        region="us01",
    )
    token = AccessTokens.from_settings(elsewhere).issue("c", "a", now=NOW).access_token
    with pytest.raises(InvalidToken) as refusal:
        AccessTokens.from_settings(settings).verify(token, now=NOW)
    assert refusal.value.message == (
        "this token was issued by https://old.example.com (region us01); "
        "request a token from this deployment's /oauth2/token (region us01)"
    )


def test_token_of_another_regions_deployment_names_our_region_only(tmp_path: Path, tokens: AccessTokens) -> None:
    eu = AccessTokens.from_settings(
        Settings(data_dir=tmp_path / "eu", public_url="https://eu.example.com", region="eu")
    )
    token = eu.issue("uvmc_eu", "account-eu", now=NOW).access_token
    assert eu.verify(token, now=NOW).client_id == "uvmc_eu"

    with pytest.raises(InvalidToken) as refusal:
        tokens.verify(token, now=NOW)
    # Its claims are unverified here (another key signed them): none of them is echoed.
    assert refusal.value.message == (
        "this token was not signed by this deployment (is it another region's?); "
        "request a token from this deployment's /oauth2/token (region us01)"
    )


def encode_raw(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MARKER = "\u2603-INJECTED\r\nX-Forged: 1"
DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        # The confirmed case: an unknown kid and a non-Latin-1 issuer (was echoed into WWW-Authenticate).
        (
            json.dumps({"alg": "ES256", "kid": "unknown"}).encode(),
            json.dumps({"iss": MARKER, "region": MARKER}).encode(),
        ),
        (json.dumps({"alg": MARKER, "kid": "unknown"}).encode(), b"{}"),
        (json.dumps({"alg": "ES256", "kid": ["a", MARKER]}).encode(), b"{}"),
        (json.dumps(["alg", "ES256"]).encode(), b"{}"),
        (b'"ES256"', b"{}"),
        (b"\xff\xfe", b"{}"),
        (DEEP[:4000] + DEEP[-4000:], b"{}"),
        (json.dumps({"alg": "ES256", "kid": "unknown"}).encode(), DEEP[:2500] + DEEP[-2500:]),
        (json.dumps({"alg": "ES256", "kid": "unknown"}).encode(), b"\xff" + MARKER.encode()),
    ],
)
def test_malformed_tokens_are_refused_without_echoing_their_content(
    tokens: AccessTokens, header: bytes, payload: bytes
) -> None:
    token = f"{encode_raw(header)}.{encode_raw(payload)}.{encode_raw(b'signature')}"
    with pytest.raises(InvalidToken) as refusal:
        tokens.verify(token, now=NOW)
    assert "INJECTED" not in refusal.value.message
    assert "\u2603" not in refusal.value.message
    refusal.value.message.encode("ascii")


def test_foreign_key_with_our_claims_is_still_refused(tmp_path: Path, settings: Settings, tokens: AccessTokens) -> None:
    # A key of its own but our issuer and audience: the kid alone must stop it.
    impostor = AccessTokens.from_settings(settings.model_copy(update={"keys_dir": tmp_path / "impostor"}))
    token = impostor.issue("c", "a", now=NOW).access_token
    with pytest.raises(InvalidToken, match="request a token from this deployment's /oauth2/token"):
        tokens.verify(token, now=NOW)


def test_tampered_payload_is_refused(tokens: AccessTokens) -> None:
    header, payload, signature = segments(tokens.issue("c", "account-1", now=NOW).access_token)
    claims = decode_segment(payload)
    claims["account_id"] = "someone-elses-account"
    with pytest.raises(InvalidToken, match="signature is not valid"):
        tokens.verify(f"{header}.{encode_segment(claims)}.{signature}", now=NOW)


def test_tampered_signature_is_refused(tokens: AccessTokens) -> None:
    header, payload, signature = segments(tokens.issue("c", "a", now=NOW).access_token)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature is not valid"):
        tokens.verify(f"{header}.{payload}.{forged}", now=NOW)


def test_alg_none_is_refused(tokens: AccessTokens) -> None:
    header, payload, _ = segments(tokens.issue("c", "a", now=NOW).access_token)
    unsigned_header = decode_segment(header) | {"alg": "none"}
    with pytest.raises(InvalidToken, match="only accepts ES256"):
        tokens.verify(f"{encode_segment(unsigned_header)}.{payload}.", now=NOW)


def test_hmac_signed_with_the_public_key_is_refused(tokens: AccessTokens) -> None:
    # The classic key-confusion attack: HS256 keyed with the published public key.
    public = json.dumps(tokens.jwks()["keys"][0])
    header, payload, _ = segments(tokens.issue("c", "a", now=NOW).access_token)
    hs_header = decode_segment(header) | {"alg": "HS256"}
    signing_input = f"{encode_segment(hs_header)}.{payload}"
    mac = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken, match="only accepts ES256"):
        tokens.verify(forged, now=NOW)


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b", "a.b.c.d", "é.é.é", "x" * 20_000])
def test_garbage_is_refused_clearly(tokens: AccessTokens, garbage: str) -> None:
    with pytest.raises(InvalidToken, match="access token"):
        tokens.verify(garbage, now=NOW)


def test_signed_token_missing_claims_is_refused(tokens: AccessTokens, settings: Settings) -> None:
    key = tokens.keys.signing().key
    kid = tokens.jwks()["keys"][0]["kid"]
    issued_at = int(NOW.timestamp())
    token = jwt.encode(
        {"alg": "ES256", "kid": kid},
        {
            "iss": settings.token_issuer,
            "aud": settings.token_audience,
            "region": "us01",
            "sub": "c",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + 60,
        },
        key,
        algorithms=["ES256"],
    )
    with pytest.raises(InvalidToken, match="lacks the claims account_id,jti"):
        tokens.verify(token, now=NOW)


def test_signed_token_for_another_audience_is_refused(tokens: AccessTokens, settings: Settings) -> None:
    key = tokens.keys.signing().key
    kid = tokens.jwks()["keys"][0]["kid"]
    issued_at = int(NOW.timestamp())
    token = jwt.encode(
        {"alg": "ES256", "kid": kid},
        {
            "iss": settings.token_issuer,
            "aud": "some-other-api",
            "region": "us01",
            "sub": "c",
            "account_id": "a",
            "jti": "j",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + 60,
        },
        key,
        algorithms=["ES256"],
    )
    with pytest.raises(InvalidToken, match=r"\(region us01\)"):
        tokens.verify(token, now=NOW)


def test_cache_never_outlives_exp(tokens: AccessTokens) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    expires_at = NOW + timedelta(seconds=3600)
    assert tokens.verify(token, now=NOW).client_id == "c"  # cached from here on
    assert tokens.verify(token, now=expires_at - timedelta(seconds=1)).client_id == "c"

    # Within the leeway a full verification still accepts it; the cache must not decide that.
    assert tokens.verify(token, now=expires_at + timedelta(seconds=LEEWAY_SECONDS - 1)).client_id == "c"
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token, now=expires_at + timedelta(seconds=LEEWAY_SECONDS))


def test_cache_answers_do_not_skip_checks_before_nbf(tokens: AccessTokens) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    tokens.verify(token, now=NOW)
    with pytest.raises(InvalidToken, match="not valid yet"):
        tokens.verify(token, now=NOW - timedelta(hours=1))


def test_cache_stays_bounded(tokens: AccessTokens, settings: Settings) -> None:
    small_cache = AccessTokens(
        tokens.keys,
        issuer=tokens.issuer,
        audience=tokens.audience,
        region=tokens.region,
        lifetime_seconds=tokens.lifetime_seconds,
        cache_size=3,
    )
    issued = [small_cache.issue("c", "a", now=NOW).access_token for _ in range(10)]
    for token in issued:
        small_cache.verify(token, now=NOW)
    assert len(small_cache._cache) == 3
    # Evicted tokens are not refused: they are verified again in full.
    assert small_cache.verify(issued[0], now=NOW).client_id == "c"


def test_failed_verifications_are_not_cached(tokens: AccessTokens) -> None:
    token = tokens.issue("c", "a", now=NOW).access_token
    with pytest.raises(InvalidToken):
        tokens.verify(token, now=NOW + timedelta(days=1))
    assert tokens._cache == {}
