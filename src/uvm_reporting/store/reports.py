"""Saved reports of an account: a validated definition plus its access settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from uvm_reporting.domain.report_definition import ReportDefinition, parse_report_definition
from uvm_reporting.errors import NotFound
from uvm_reporting.store.accounts import get_account
from uvm_reporting.store.ids import new_id, utc_now
from uvm_reporting.store.tables import reports


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    account_id: str
    definition: ReportDefinition
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def is_public(self) -> bool:
        return self.definition.is_public


def create_report(engine: Engine, account_id: str, data: Mapping[str, Any]) -> Report:
    """Validate ``data`` against the catalog and save it; raises BadUserInput naming the problem."""
    get_account(engine, account_id)
    definition = parse_report_definition(data)
    now = utc_now()
    report = Report(id=new_id(), account_id=account_id, definition=definition, created_at=now,
                    updated_at=now)
    with engine.begin() as connection:
        connection.execute(insert(reports).values(_row_values(report)))
    return report


def update_report(engine: Engine, account_id: str, report_id: str, data: Mapping[str, Any]) -> Report:
    existing = get_report(engine, account_id, report_id)
    definition = parse_report_definition(data)
    report = Report(id=existing.id, account_id=account_id, definition=definition,
                    created_at=existing.created_at, updated_at=utc_now())
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id == report_id).values(_row_values(report)))
    return report


def get_report(engine: Engine, account_id: str, report_id: str) -> Report:
    """The report ``report_id`` of ``account_id``; another account's report is NotFound too."""
    with engine.connect() as connection:
        row = connection.execute(
            select(reports).where(reports.c.id == report_id, reports.c.account_id == account_id)
        ).one_or_none()
    if row is None:
        raise NotFound(f"Report {report_id} was not found in account {account_id}.", report_id=report_id)
    return _report_from_row(row)


def list_reports(engine: Engine, account_id: str, *, public_only: bool = False) -> list[Report]:
    query = select(reports).where(reports.c.account_id == account_id).order_by(reports.c.created_at)
    if public_only:
        query = query.where(reports.c.viewers == "public", reports.c.editors == "public")
    with engine.connect() as connection:
        return [_report_from_row(row) for row in connection.execute(query)]


def _row_values(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "account_id": report.account_id,
        "name": report.definition.name,
        "entity": report.definition.entity,
        "definition": report.definition.to_json(),
        "viewers": report.definition.viewers,
        "editors": report.definition.editors,
        "created_at": report.created_at,
        "updated_at": report.updated_at,
    }


def _report_from_row(row: Any) -> Report:
    return Report(
        id=row.id,
        account_id=row.account_id,
        definition=parse_report_definition(row.definition),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
