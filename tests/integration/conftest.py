"""Integration fixtures: the real services over a migrated SQLite file and a temp storage folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from uvm_reporting.domain.catalog import FINDINGS
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.services import Services, build_services
from uvm_reporting.settings import Settings
from uvm_reporting.store.accounts import Account
from uvm_reporting.store.reports import Report, create_report

ALL_FINDINGS_REPORT: dict[str, Any] = {
    "name": "All findings",
    "entity": "findings",
    "columns": [field.name for field in FINDINGS.fields] + ["asset.hostname"],
    "sort": [{"field": "id", "direction": "asc"}],
    "viewers": "public",
    "editors": "public",
}


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


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
