from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from uvm_reporting.errors import Forbidden
from uvm_reporting.key_ring import KeyFileError
from uvm_reporting.settings import Settings
from uvm_reporting.storage.download_links import DownloadLinkSigner, link_key_ring

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def signer(key: bytes = b"k" * 32, lifetime: int = 3600) -> DownloadLinkSigner:
    return DownloadLinkSigner(key, "https://reports.example.com/", lifetime)


def parts(url: str) -> tuple[str, str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.rsplit("/", 1)[1], query["client"][0], query["expires"][0], query["signature"][0]


def test_a_signed_link_verifies_until_it_expires() -> None:
    link = signer().sign("run-1", "client-1", now=NOW)
    assert link.url.startswith("https://reports.example.com/downloads/run-1?")
    assert link.expires_at == NOW + timedelta(hours=1)
    run_id, client_id, expires, signature = parts(link.url)
    assert client_id == "client-1"
    signer().verify(run_id, client_id, expires, signature, now=NOW + timedelta(minutes=59))
    with pytest.raises(Forbidden, match="expired"):
        signer().verify(run_id, client_id, expires, signature, now=NOW + timedelta(hours=1))


def test_tampering_with_any_part_is_refused() -> None:
    run_id, client_id, expires, signature = parts(signer().sign("run-1", "client-1", now=NOW).url)
    with pytest.raises(Forbidden, match="signature"):
        signer().verify("run-2", client_id, expires, signature, now=NOW)
    with pytest.raises(Forbidden, match="signature"):
        signer().verify(run_id, "client-2", expires, signature, now=NOW)  # the client it was issued to
    with pytest.raises(Forbidden, match="signature"):
        signer().verify(run_id, "", expires, signature, now=NOW)
    with pytest.raises(Forbidden, match="signature"):
        signer().verify(run_id, client_id, str(int(expires) + 3600), signature, now=NOW)
    with pytest.raises(Forbidden, match="signature"):
        signer().verify(run_id, client_id, expires, signature[:-1] + ("A" if signature[-1] != "A" else "B"), now=NOW)
    with pytest.raises(Forbidden, match="signature"):
        signer(key=b"x" * 32).verify(run_id, client_id, expires, signature, now=NOW)
    with pytest.raises(Forbidden, match="malformed"):
        signer().verify(run_id, client_id, "soon", signature, now=NOW)


def test_fields_cannot_be_shifted_from_one_to_another() -> None:
    """The run and client ids are length-prefixed in what is signed: moving a character from one
    to the other changes the signature."""
    _, _, expires, signature = parts(signer().sign("run-1", "client-1", now=NOW).url)
    with pytest.raises(Forbidden, match="signature"):
        signer().verify("run-1\n", "client-1"[1:], expires, signature, now=NOW)


def test_each_client_gets_its_own_link() -> None:
    one = signer()
    assert one.sign("run-1", "client-1", now=NOW).url != one.sign("run-1", "client-2", now=NOW).url


def test_a_later_poll_gets_a_fresh_link_with_a_later_expiry() -> None:
    first = signer().sign("run-1", "client-1", now=NOW)
    second = signer().sign("run-1", "client-1", now=NOW + timedelta(minutes=5))
    assert second.url != first.url
    assert second.expires_at == first.expires_at + timedelta(minutes=5)


def test_polls_within_one_second_get_the_link_a_fresh_signer_would_sign() -> None:
    one = signer()
    first = one.sign("run-1", "client-1", now=NOW + timedelta(milliseconds=100))
    again = one.sign("run-1", "client-1", now=NOW + timedelta(milliseconds=900))
    assert again == first == signer().sign("run-1", "client-1", now=NOW)
    assert one.sign("run-2", "client-1", now=NOW).url != first.url  # per run
    later = one.sign("run-1", "client-1", now=NOW + timedelta(seconds=1))
    assert later.expires_at == first.expires_at + timedelta(seconds=1)
    assert later == signer().sign("run-1", "client-1", now=NOW + timedelta(seconds=1))


def test_the_lifetime_is_configurable() -> None:
    assert signer(lifetime=60).sign("r", "client-1", now=NOW).expires_at == NOW + timedelta(seconds=60)


def kid_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["kid"][0]


def test_the_key_file_is_created_private_and_then_reused(settings: Settings) -> None:
    first = DownloadLinkSigner.from_settings(settings)
    path = settings.keys_dir / "download-links" / "generated.key"
    assert len(path.read_bytes()) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = DownloadLinkSigner.from_settings(settings)
    assert kid_of(again.sign("r", "c", now=NOW).url) == kid_of(first.sign("r", "c", now=NOW).url)
    assert list(path.parent.iterdir()) == [path]


def test_links_signed_before_a_rotation_keep_working_until_they_expire(settings: Settings) -> None:
    now = datetime.now(UTC)
    running = DownloadLinkSigner.from_settings(settings)  # a process started before the rotation
    before = running.sign("run-1", "client-1", now=now)

    rotation = link_key_ring(settings).rotate()  # `uvm-reporting keys rotate`, in another process
    started_after = DownloadLinkSigner.from_settings(settings)
    after = started_after.sign("run-1", "client-1", now=now)
    assert kid_of(after.url) == rotation.created.key_id != kid_of(before.url)

    for signer_ in (running, started_after):
        for link in (before, after):
            run_id, client_id, expires, signature = parts(link.url)
            signer_.verify(run_id, client_id, expires, signature, now=now, kid=kid_of(link.url))
    # The process that signed before the rotation met the new kid, read the folder, signs with it.
    assert kid_of(running.sign("run-2", "client-1", now=now).url) == rotation.created.key_id

    # The old key retires once its last links (and those signed before every process reloaded) expired.
    retired_at = rotation.created.created_at + settings.download_link_lifetime_seconds + settings.key_reload_seconds
    run_id, client_id, expires, signature = parts(before.url)
    with pytest.raises(Forbidden, match="retired"):
        started_after.verify(
            run_id,
            client_id,
            expires,
            signature,
            now=datetime.fromtimestamp(retired_at + 1, UTC),
            kid=kid_of(before.url),
        )


def test_the_key_file_of_earlier_versions_keeps_signing_until_a_rotation(settings: Settings) -> None:
    legacy_key = b"L" * 32
    settings.keys_dir.mkdir(parents=True)
    legacy_file = settings.keys_dir / "download-link.key"
    legacy_file.write_bytes(legacy_key)
    legacy_file.chmod(0o600)
    signer_ = DownloadLinkSigner.from_settings(settings)
    link = signer_.sign("run-1", "client-1", now=NOW)
    same_key = DownloadLinkSigner(legacy_key, settings.public_url, settings.download_link_lifetime_seconds)
    assert link == same_key.sign("run-1", "client-1", now=NOW)  # the same key, the same link
    run_id, client_id, expires, signature = parts(link.url)
    signer_.verify(run_id, client_id, expires, signature, now=NOW, kid=kid_of(link.url))
    assert not (settings.keys_dir / "download-links" / "generated.key").exists()  # the old file still signs


def test_a_key_file_others_can_read_is_refused_with_the_fix(settings: Settings) -> None:
    DownloadLinkSigner.from_settings(settings)
    path = settings.keys_dir / "download-links" / "generated.key"
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {path}"):
        DownloadLinkSigner.from_settings(settings)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DownloadLinkSigner(b"short", "http://x", 60)
