"""Integration fixtures: the real services over a migrated database (SQLite, PostgreSQL) and a temp storage folder."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.support.reports import ALL_FINDINGS_REPORT
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.services import Services, build_services
from uvm_reporting.settings import Settings


@pytest.fixture
def services(settings: Settings, engine: Engine) -> Services:
    return build_services(settings, engine)


@pytest.fixture
def findings_data(engine: Engine, account: Account) -> int:
    return generate_platform_data(engine, account.id, findings=120, seed=7).findings


@pytest.fixture
def public_report(engine: Engine, account: Account, findings_data: int) -> Report:
    return create_report(engine, account.id, ALL_FINDINGS_REPORT)


@pytest.fixture
def private_report(engine: Engine, account: Account) -> Report:
    return create_report(engine, account.id, {**ALL_FINDINGS_REPORT, "name": "Mine", "viewers": "private"})
