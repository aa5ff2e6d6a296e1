"""Token-signing keys rotate: the new key signs at once, old tokens keep verifying until they
expire, the JWKS lists every key that still verifies, and other processes follow without restart."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from uvm_reporting.auth.access_tokens import AccessTokens, InvalidToken
from uvm_reporting.auth.signing_keys import token_key_ring
from uvm_reporting.key_ring import KeyFileError
from uvm_reporting.settings import Settings


def kid_of(token: str) -> str:
    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


def test_a_rotation_signs_new_tokens_and_keeps_old_ones_verifying(settings: Settings) -> None:
    now = datetime.now(UTC)
    running = AccessTokens.from_settings(settings)  # an API process started before the rotation
    old_token = running.issue("c", "a", now=now).access_token
    (old_kid,) = [key["kid"] for key in running.jwks()["keys"]]

    rotation = token_key_ring(settings).rotate()  # `uvm-reporting keys rotate`
    new_kid = rotation.created.key_id
    assert new_kid != old_kid
    assert rotation.created.path is not None
    assert stat.S_IMODE(rotation.created.path.stat().st_mode) == 0o600

    started_after = AccessTokens.from_settings(settings)  # another API process
    new_token = started_after.issue("c", "a", now=now).access_token
    assert kid_of(new_token) == new_kid
    assert started_after.verify(old_token, now=now).client_id == "c"
    assert [key["kid"] for key in started_after.jwks()["keys"]] == [old_kid, new_kid]

    # The process that has not read the folder since: the unknown kid makes it read it now.
    assert running.verify(new_token, now=now).client_id == "c"
    assert [key["kid"] for key in running.jwks()["keys"]] == [old_kid, new_kid]
    assert kid_of(running.issue("c", "a", now=now).access_token) == new_kid


def test_an_old_key_retires_once_its_last_tokens_expired(settings: Settings) -> None:
    tokens = AccessTokens.from_settings(settings)
    old_kid = tokens.keys.signing().key_id
    rotation = token_key_ring(settings).rotate()
    tokens.keys.reload()
    grace = settings.token_lifetime_seconds + settings.key_reload_seconds + 30
    just_before = rotation.created.created_at + grace - 1
    assert [key.key_id for key in tokens.keys.verifying(just_before)] == [old_kid, rotation.created.key_id]
    assert [key.key_id for key in tokens.keys.verifying(just_before + 1)] == [rotation.created.key_id]
    assert tokens.keys.find(old_kid, just_before + 1) is None

    # The next rotation deletes the retired key's file.
    old_path = next(key.path for key in tokens.keys.all_keys() if key.key_id == old_kid)
    assert old_path is not None
    ring = token_key_ring(settings.model_copy(update={"token_lifetime_seconds": 60}))
    ring.grace_seconds = -1e12  # as if the grace had long passed
    assert old_path in ring.rotate().removed
    assert not old_path.exists()


def test_a_token_of_a_retired_key_is_refused(settings: Settings) -> None:
    tokens = AccessTokens.from_settings(settings)
    now = datetime.now(UTC)
    token = tokens.issue("c", "a", now=now).access_token
    token_key_ring(settings).rotate()
    tokens.keys.reload()
    tokens.keys.grace_seconds = 0
    tokens.keys.reload()
    with pytest.raises(InvalidToken, match="request a token from this deployment"):
        tokens.verify(token, now=datetime.now(UTC) + timedelta(seconds=1))


def test_a_signing_key_others_can_read_stops_the_start_with_the_fix(settings: Settings) -> None:
    rotation = token_key_ring(settings).rotate()
    assert rotation.created.path is not None
    rotation.created.path.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {rotation.created.path}"):
        AccessTokens.from_settings(settings)


def test_a_keys_folder_others_can_write_is_refused(settings: Settings) -> None:
    AccessTokens.from_settings(settings)
    folder = settings.keys_dir / "token-signing"
    folder.chmod(0o777)
    with pytest.raises(KeyFileError, match=f"chmod 700 {folder}"):
        AccessTokens.from_settings(settings)


def test_without_generated_keys_an_empty_or_generated_ring_is_refused(settings: Settings) -> None:
    strict = settings.model_copy(update={"generate_keys": False})
    with pytest.raises(KeyFileError, match="keys rotate"):
        AccessTokens.from_settings(strict)
    AccessTokens.from_settings(settings)  # a development start makes generated.pem
    with pytest.raises(KeyFileError, match="made automatically"):
        AccessTokens.from_settings(strict)
    token_key_ring(strict).rotate()
    assert AccessTokens.from_settings(strict).keys.signing().generated is False


def test_tokens_of_the_single_key_file_of_earlier_versions_keep_verifying(settings: Settings) -> None:
    settings.keys_dir.mkdir(parents=True)
    legacy = settings.keys_dir / "token-signing-key.pem"
    legacy.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    legacy.chmod(0o600)
    tokens = AccessTokens.from_settings(settings)
    assert tokens.keys.signing().path == legacy
    token = tokens.issue("c", "a").access_token
    token_key_ring(settings).rotate()
    assert AccessTokens.from_settings(settings).verify(token).client_id == "c"


def test_a_running_process_keeps_its_keys_when_the_folder_empties(settings: Settings) -> None:
    tokens = AccessTokens.from_settings(settings)
    token = tokens.issue("c", "a").access_token
    for path in (settings.keys_dir / "token-signing").iterdir():
        path.unlink()
    tokens.keys.reload()
    assert tokens.verify(token).client_id == "c"
    assert tokens.issue("c", "a").access_token
