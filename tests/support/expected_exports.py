"""What an export of the all-findings report must contain, read independently from the database."""

from __future__ import annotations

from sqlalchemy import Engine, select

from uvm_reporting.database.tables import assets, findings
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.exports.formula_safety import neutralise_formula


def expected_findings_rows(engine: Engine, account_id: str) -> list[list[str]]:
    """Every finding of the account with its asset's host name, formatted as the CSV promises."""
    query = (
        select(findings, assets.c.hostname)
        .select_from(
            findings.outerjoin(
                assets, (assets.c.account_id == findings.c.account_id) & (assets.c.id == findings.c.asset_id)
            )
        )
        .where(findings.c.account_id == account_id)
        .order_by(findings.c.id)
    )
    text = neutralise_formula
    rows = []
    with engine.connect() as connection:
        for row in connection.execute(query):
            values = row._mapping
            rows.append(
                [
                    text(values["id"]),
                    text(values["asset_id"] or ""),
                    text(values["title"]),
                    text(values["description"] or ""),
                    values["severity"],
                    values["status"],
                    _number(values["cvss_score"]),
                    values["cve"] or "",
                    values["cwe"] or "",
                    values["source"] or "",
                    format_utc(values["first_seen"]),
                    format_utc(values["last_seen"]),
                    values["due_date"].isoformat() if values["due_date"] else "",
                    format_utc(values["resolved_at"]) if values["resolved_at"] else "",
                    text(values["hostname"] or ""),
                ]
            )
    return rows


def _number(value: float | None) -> str:
    """Shortest text, whole numbers without ``.0`` (``10``, ``9.8``): the export's number rule."""
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() else repr(value)
