"""Rate limits: ``POST /oauth2/token`` per source address and per client id (checked before any
Argon2 work), the bounded secret-hashing pool, ``processReport`` per account, and the
counters in the deployment's database that make the limits hold across API processes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote_plus

import pytest
from argon2 import PasswordHasher
from limits.storage import MemoryStorage
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.support.clock import ManualClock
from uvm_reporting.api.app import create_app
from uvm_reporting.api.token_routes import token_routes
from uvm_reporting.application.rate_limits import RateLimits, address_key, rate_limit_storage
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.auth.api_client_credentials import CreatedClient, create_client
from uvm_reporting.auth.hashing_pool import HashingPool
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.rate_limit_counters import PURGE_INTERVAL_SECONDS, DatabaseRateLimitStorage
from uvm_reporting.database.reports import Report
from uvm_reporting.database.tables import rate_limit_counters, runs
from uvm_reporting.errors import RateLimited
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings

FORM = {"content-type": "application/x-www-form-urlencoded"}
# forceNew: each call queues a run of its own (identical requests would join the first).
PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true, forceNew: true)}"


class Verifications:
    """Counts Argon2 verifications (real and dummy ones) made in this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = PasswordHasher.verify
        lock = threading.Lock()

        def counted(hasher: PasswordHasher, *args: Any, **kwargs: Any) -> Any:
            with lock:
                self.count += 1
            return real(hasher, *args, **kwargs)

        monkeypatch.setattr(PasswordHasher, "verify", counted)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    return Verifications(monkeypatch)


@pytest.fixture
def tokens(settings: Settings) -> AccessTokens:
    return AccessTokens.from_settings(settings)


@pytest.fixture
def client(engine: Engine, account: Account) -> CreatedClient:
    return create_client(engine, account.id, "ci")


def token_app(engine: Engine, tokens: AccessTokens, limits: RateLimits, pool: HashingPool | None = None) -> Starlette:
    return Starlette(routes=token_routes(engine, tokens, rate_limits=limits, hashing=pool))


def ask_token(http: TestClient, client_id: str, client_secret: str) -> Any:
    body = f"grant_type=client_credentials&client_id={quote_plus(client_id)}&client_secret={quote_plus(client_secret)}"
    return http.post("/oauth2/token", headers=FORM, content=body)


def assert_rate_limited(response: Any) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "too_many_requests"
    assert "a minute" in response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


@pytest.mark.backends("sqlite")
def test_a_flood_of_junk_client_ids_from_one_address_is_refused_before_any_hash(
    engine: Engine, tokens: AccessTokens, verifications: Verifications
) -> None:
    limits = RateLimits(MemoryStorage(), token_requests_per_ip=5)
    with TestClient(token_app(engine, tokens, limits), client=("203.0.113.7", 50000)) as http:
        answers = [ask_token(http, f"uvmc_junk{n}", "uvms_guess").status_code for n in range(5)]
        assert answers == [401] * 5
        assert verifications.count == 5  # one (dummy) verification each, to hide which ids exist

        for n in range(5, 40):
            assert_rate_limited(ask_token(http, f"uvmc_junk{n}", "uvms_guess"))
    assert verifications.count == 5  # the refused 35 cost no hash at all


@pytest.mark.backends("sqlite")
def test_the_address_limit_is_per_address(
    engine: Engine, tokens: AccessTokens, client: CreatedClient, verifications: Verifications
) -> None:
    limits = RateLimits(MemoryStorage(), token_requests_per_ip=3)
    app = token_app(engine, tokens, limits)
    with (
        TestClient(app, client=("203.0.113.7", 50000)) as flooder,
        TestClient(app, client=("198.51.100.1", 50000)) as honest,
    ):
        for n in range(3):
            assert ask_token(flooder, f"uvmc_junk{n}", "uvms_guess").status_code == 401
        assert_rate_limited(ask_token(flooder, client.client_id, client.client_secret))
        # Another address is not held back by the flood.
        assert ask_token(honest, client.client_id, client.client_secret).status_code == 200


@pytest.mark.backends("sqlite")
def test_the_client_id_limit_holds_across_addresses(
    engine: Engine, tokens: AccessTokens, client: CreatedClient, verifications: Verifications
) -> None:
    limits = RateLimits(MemoryStorage(), token_requests_per_client=4)
    app = token_app(engine, tokens, limits)
    for n in range(4):
        with TestClient(app, client=(f"192.0.2.{n}", 50000)) as http:
            assert ask_token(http, client.client_id, "uvms_wrong").status_code == 401
    assert verifications.count == 4
    with TestClient(app, client=("192.0.2.200", 50000)) as http:
        # Guessing one client's secret from many addresses stops at the client's limit.
        assert_rate_limited(ask_token(http, client.client_id, client.client_secret))
        assert ask_token(http, "uvmc_another", "uvms_guess").status_code == 401
    assert verifications.count == 5


@pytest.mark.backends("sqlite")
def test_a_malformed_request_is_not_counted(engine: Engine, tokens: AccessTokens, client: CreatedClient) -> None:
    limits = RateLimits(MemoryStorage(), token_requests_per_ip=2)
    with TestClient(token_app(engine, tokens, limits)) as http:
        for _ in range(10):
            assert http.post("/oauth2/token", headers=FORM, content="grant_type=password").status_code == 400
        assert ask_token(http, client.client_id, client.client_secret).status_code == 200


@pytest.mark.backends("sqlite")
def test_a_full_hashing_pool_answers_503_at_once_without_hashing(
    engine: Engine, tokens: AccessTokens, client: CreatedClient, verifications: Verifications
) -> None:
    pool = HashingPool(threads=1, queue=1)
    release = threading.Event()
    held = [pool.submit(release.wait, 30) for _ in range(2)]  # its one thread and its one queue place
    with TestClient(token_app(engine, tokens, RateLimits(MemoryStorage()), pool)) as http:
        try:
            response = ask_token(http, client.client_id, client.client_secret)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"] == "1"
            assert verifications.count == 0
        finally:
            release.set()
        for future in held:
            future.result(timeout=30)
        assert ask_token(http, client.client_id, client.client_secret).status_code == 200


# A load test (30 s of flooding): it runs in the slow step of CI.
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_a_token_flood_leaves_the_rest_of_the_app_answering(
    engine: Engine, tokens: AccessTokens, verifications: Verifications
) -> None:
    """Thirty concurrent junk requests: at most the pool's threads plus its queue are hashed, the
    rest are refused with 503, and none of them waits for a thread of the shared pool."""
    pool = HashingPool(threads=1, queue=2)
    release = threading.Event()
    blocker = pool.submit(release.wait, 30)  # keeps the hashing thread busy while the flood arrives
    app = token_app(engine, tokens, RateLimits(MemoryStorage(), token_requests_per_ip=0), pool)
    with TestClient(app) as http, ThreadPoolExecutor(max_workers=30) as flood:
        answers = list(flood.map(lambda n: ask_token(http, f"uvmc_junk{n}", "uvms_guess").status_code, range(30)))
        release.set()
        blocker.result(timeout=30)
    assert answers.count(503) >= 28
    assert set(answers) <= {401, 503}
    assert verifications.count == answers.count(401) <= 2


@pytest.fixture
def limited_services(settings: Settings, engine: Engine) -> Any:
    return build_services(settings.model_copy(update={"process_reports_per_minute_per_account": 3}), engine)


def graphql(http: TestClient, services: Any, account_id: str, report_id: str) -> dict[str, Any]:
    client = create_client(services.engine, account_id)
    token = services.tokens.issue(client.client_id, account_id).access_token
    response = http.post(
        "/api/graphql",
        json={"query": PROCESS_REPORT, "variables": {"id": report_id}},
        headers={"Authorization": f"Bearer {token}", "accountId": account_id},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.backends("sqlite")
def test_process_report_is_limited_per_account_before_the_run_is_enqueued(
    limited_services: Any, account: Account, other_account: Account, public_report: Report
) -> None:
    with TestClient(create_app(limited_services, run_workers=False)) as http:
        for _ in range(3):
            assert "errors" not in graphql(http, limited_services, account.id, public_report.id)
        refused = graphql(http, limited_services, account.id, public_report.id)
        assert refused["data"] == {"processReport": None}
        error = refused["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= error["extensions"]["retryAfter"] <= 60
        assert "processReport" in error["message"]
        assert "at most 3 a minute" in error["message"]
        # Another account has its own allowance (its report id is unknown to it: NOT_FOUND, not RATE_LIMITED).
        other = graphql(http, limited_services, other_account.id, public_report.id)
        assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    with limited_services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(runs)).scalar_one() == 3


def test_login_limits_are_per_email_and_per_address() -> None:
    limits = RateLimits(MemoryStorage(), login_attempts_per_email=2, login_attempts_per_ip=2)
    limits.check_login("Ann@Example.com", "203.0.113.7")
    limits.check_login("ann@example.com ", "198.51.100.1")
    with pytest.raises(RateLimited) as refused:
        limits.check_login("ANN@example.com", "192.0.2.1")  # the same email, however it is written
    assert refused.value.limit == "login-email"
    limits.check_login("bob@example.com", "203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        limits.check_login("carol@example.com", "203.0.113.7")  # third attempt from that address
    assert refused.value.limit == "login-ip"
    assert 1 <= refused.value.retry_after_seconds <= 60


def test_a_sign_in_clears_its_emails_failed_attempts() -> None:
    limits = RateLimits(MemoryStorage(), login_attempts_per_email=2)
    limits.check_login("ann@example.com", "203.0.113.7")
    limits.check_login("ann@example.com", "203.0.113.7")
    limits.clear_login("Ann@example.com")
    limits.check_login("ann@example.com", "203.0.113.7")


@pytest.mark.parametrize(
    ("source_ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_address_counts_as_its_64_network(source_ip: str | None, key: str) -> None:
    assert address_key(source_ip) == key


def test_a_limit_of_zero_is_no_limit() -> None:
    limits = RateLimits(MemoryStorage(), process_reports_per_account=0)
    for _ in range(500):
        limits.check_process_report("acct")


def test_a_failing_storage_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStorage):
        def incr(self, *_: Any, **__: Any) -> int:
            raise ValueError("storage down")

    limits = RateLimits(Broken(), process_reports_per_account=1)
    for _ in range(3):
        limits.check_process_report("acct")
    assert "rate-limit storage failed" in caplog.text


# The counters in the deployment's database (both backends).


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.now = 1_800_000_000.0
    return clock


@pytest.fixture
def storage(engine: Engine, clock: ManualClock) -> DatabaseRateLimitStorage:
    return DatabaseRateLimitStorage(engine, clock=clock)


def test_database_counters_count_within_a_window_and_restart_after_it(
    storage: DatabaseRateLimitStorage, clock: ManualClock
) -> None:
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3
    assert storage.get_expiry("k") == pytest.approx(clock() + 60)
    clock.now += 59.5
    assert storage.incr("k", 60) == 4
    clock.now += 1
    assert storage.get("k") == 0  # the window ended
    assert storage.incr("k", 60, amount=2) == 2
    assert storage.get_expiry("k") == pytest.approx(clock() + 60)
    storage.clear("k")
    assert storage.get("k") == 0
    assert storage.check()


def test_database_counters_drive_the_limits(storage: DatabaseRateLimitStorage, clock: ManualClock) -> None:
    limits = RateLimits(storage, process_reports_per_account=2, clock=clock)
    limits.check_process_report("acct")
    clock.now += 20
    limits.check_process_report("acct")
    with pytest.raises(RateLimited) as refused:
        limits.check_process_report("acct")
    assert refused.value.retry_after_seconds == 40
    clock.now += 40
    limits.check_process_report("acct")


def test_ended_windows_are_purged(storage: DatabaseRateLimitStorage, clock: ManualClock, engine: Engine) -> None:
    for n in range(5):
        storage.incr(f"junk{n}", 10)
    clock.now += PURGE_INTERVAL_SECONDS + 1
    storage.incr("fresh", 10)
    with engine.connect() as connection:
        assert connection.execute(select(rate_limit_counters.c.key)).scalars().all() == ["fresh"]


@pytest.mark.backends("postgresql")
def test_concurrent_increments_lose_no_count(engine: Engine) -> None:
    storage = DatabaseRateLimitStorage(engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: storage.incr("shared", 60), range(200)))
    assert sorted(counts) == list(range(1, 201))


def test_the_default_storage_is_memory_on_sqlite_and_the_database_on_postgresql(engine: Engine) -> None:
    expected = DatabaseRateLimitStorage if engine.dialect.name == "postgresql" else MemoryStorage
    assert isinstance(rate_limit_storage("", engine), expected)
    assert isinstance(rate_limit_storage("memory://", engine), MemoryStorage)
    assert isinstance(rate_limit_storage("database", engine), DatabaseRateLimitStorage)
