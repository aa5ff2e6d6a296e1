"""Fixtures shared by every test level: settings in a temp folder and a migrated store.

Tests that use ``engine``, ``settings`` or ``database_url`` run once per backend: on a SQLite
file copied from a file migrated once per session, and on a fresh PostgreSQL database cloned
from a template migrated once per session. ``@pytest.mark.backends("sqlite")`` (on a test, a
class or a module) keeps only the backends named: the other one is then never built. Without a
PostgreSQL server the PostgreSQL half is skipped, except in CI, where it must run.

Under pytest-xdist each worker is a session of its own: its own template file and database,
its own temp folders, and ports the kernel chose.

Random choices of a test (the scale-out tests' kill points) come from ``seeded_random``: a seed
printed at the end of the run, the same in every xdist worker; ``UVM_TEST_SEED=<seed>`` repeats them.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.postgres import cloned_database, migrated_template, postgres_problem
from tests.support.sqlite import migrated_sqlite_file
from uvm_reporting.database.accounts import Account, create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.settings import Settings

pytest_plugins = ["tests.support.s3_fixtures"]

BACKENDS = ("sqlite", "postgresql")
SEED_VARIABLE = "UVM_TEST_SEED"
SQLITE_FILE = Path("var") / "uvm-reporting.sqlite3"  # under tmp_path: where Settings(data_dir=tmp_path / "var") looks


def pytest_configure(config: pytest.Config) -> None:
    # Chosen once, before xdist starts its workers: they inherit it.
    os.environ.setdefault(SEED_VARIABLE, str(random.SystemRandom().randrange(1_000_000)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"random choices: {SEED_VARIABLE}={os.environ[SEED_VARIABLE]} (set it to repeat them)")


@pytest.fixture
def seeded_random(request: pytest.FixtureRequest) -> random.Random:
    """Random numbers for this test from the session's seed (printed with a failure's output)."""
    seed = os.environ[SEED_VARIABLE]
    print(f"{SEED_VARIABLE}={seed} ({request.node.nodeid})")
    return random.Random(f"{seed}:{request.node.nodeid}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``backend`` (which ``database_url`` asks for) before any fixture runs, with the
    backends the test's ``backends`` marker names, or both."""
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = marker.args if marker is not None else BACKENDS
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown backends {sorted(unknown)}")
    metafunc.parametrize("backend", names)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    problem = postgres_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    with migrated_template() as template:
        yield template


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once for the session: each test starts from a copy of it."""
    return migrated_sqlite_file(tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3")


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / SQLITE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    postgres: str = request.getfixturevalue("postgres_template")
    with cloned_database(postgres) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "var", database_url=database_url, public_url="http://127.0.0.1:8000", region="us01"
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def account(engine: Engine) -> Account:
    return create_account(engine, "Acme Corp")


@pytest.fixture
def other_account(engine: Engine) -> Account:
    return create_account(engine, "Globex")
