"""Reports as the API reaches them: only public ones, created, edited and their delivery tested.

Viewers and Editors access must both be Public for a report to be reachable through the API
(the spec); another account's report is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from uvm_reporting.application.ports import CustomerBuckets
from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.reports import Report, create_report, get_report, list_reports, update_report
from uvm_reporting.errors import BadUserInput, Forbidden


@dataclass
class Reports:
    engine: Engine
    buckets: CustomerBuckets
    # The shortest time a saved schedule may leave between two fire times (None: no minimum).
    min_schedule_interval: timedelta | None = None

    def create_report(self, account_id: str, definition: dict[str, Any]) -> Report:
        return create_report(self.engine, account_id, definition, min_schedule_interval=self.min_schedule_interval)

    def update_report(self, account_id: str, report_id: str, definition: dict[str, Any]) -> Report:
        self.public_report(account_id, report_id)  # public: its Editors access is Public too
        return update_report(
            self.engine, account_id, report_id, definition, min_schedule_interval=self.min_schedule_interval
        )

    def public_reports(self, account_id: str) -> list[Report]:
        """The account's reports the API may reach: the public ones."""
        return list_reports(self.engine, account_id, public_only=True)

    def public_report(self, account_id: str, report_id: str) -> Report:
        report = get_report(self.engine, account_id, report_id)
        if not report.is_public:
            raise private_report(report_id)
        return report

    def test_delivery(self, account_id: str, report_id: str, *, public_only: bool = True) -> dict[str, Any]:
        """Write and delete a canary object through the customer's role; say precisely what failed.
        The API reaches public reports only; an operator's CLI, any report (``public_only=False``)."""
        report = (
            self.public_report(account_id, report_id) if public_only else get_report(self.engine, account_id, report_id)
        )
        schedule = report.schedule
        if schedule is None:
            raise BadUserInput(f"Report {report_id} has no S3 delivery settings to test.", report_id=report_id)
        delivery = schedule.delivery
        check = self.buckets.check_delivery(
            bucket=delivery.bucket,
            prefix=delivery.path,
            region=delivery.region,
            role_arn=delivery.role_arn,
            external_id=get_account(self.engine, account_id).external_id,
        )
        return {
            "ok": check.ok,
            "code": check.code,
            "message": check.message,
            "bucket": delivery.bucket,
            "path": delivery.path,
            "roleArn": delivery.role_arn,
        }


def private_report(report_id: str) -> Forbidden:
    return Forbidden(
        f"Report {report_id} is private. Only reports whose Viewers and Editors access are both "
        "Public can be used through the API; ask an Editor of the report to make it Public.",
        report_id=report_id,
    )
