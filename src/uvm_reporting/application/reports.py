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
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.errors import BadUserInput, Forbidden, NotFound


@dataclass
class Reports:
    engine: Engine
    buckets: CustomerBuckets
    # The shortest time a saved schedule may leave between two fire times (None: no minimum).
    min_schedule_interval: timedelta | None = None

    def create_report(self, account_id: str, definition: dict[str, Any], *, actor: Actor | None = None) -> Report:
        self._check_delivery_role(definition)
        return create_report(
            self.engine, account_id, definition, actor=actor, min_schedule_interval=self.min_schedule_interval
        )

    def update_report(
        self, account_id: str, report_id: str, definition: dict[str, Any], *, actor: Actor | None = None
    ) -> Report:
        self.public_report(account_id, report_id)  # public: its Editors access is Public too
        self._check_delivery_role(definition)
        return update_report(
            self.engine,
            account_id,
            report_id,
            definition,
            actor=actor,
            min_schedule_interval=self.min_schedule_interval,
        )

    def _check_delivery_role(self, data: dict[str, Any]) -> None:
        """Refuse a schedule whose role is one of this deployment's own AWS account (a confused
        deputy: see domain/s3_names.py), named like the definition's other problems."""
        schedule = parse_report_definition(data).schedule  # BadUserInput as the save would raise it
        if schedule is None:
            return
        problem = self.buckets.operator_account_role_problem(schedule.delivery.role_arn)
        if problem is not None:
            path = "schedule.delivery.role_arn"
            raise BadUserInput(f"{path}: {problem}", path=path, problems=[{"path": path, "message": problem}])

    def public_reports(self, account_id: str) -> list[Report]:
        """The account's reports the API may reach: the public ones."""
        return list_reports(self.engine, account_id, public_only=True)

    def public_report(self, account_id: str, report_id: str) -> Report:
        report = get_report(self.engine, account_id, nameable(report_id, "Report", account_id))
        if not report.is_public:
            raise private_report(report_id)
        return report

    def test_delivery(self, account_id: str, report_id: str, *, public_only: bool = True) -> dict[str, Any]:
        """Write and delete a canary object through the customer's role; say precisely what failed.
        The API reaches public reports only; an operator's CLI, any report (``public_only=False``)."""
        report = (
            self.public_report(account_id, report_id)
            if public_only
            else get_report(self.engine, account_id, nameable(report_id, "Report", account_id))
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


def nameable(object_id: str, kind: str, account_id: str) -> str:
    """``object_id``, when it could name a stored object. One holding NUL (U+0000) names nothing:
    NotFound, as the database says of any unknown id (PostgreSQL would refuse to compare it)."""
    if "\x00" in object_id:
        raise NotFound(
            f"{kind} {object_id} was not found in account {account_id}.", **{f"{kind.lower()}_id": object_id}
        )
    return object_id


def private_report(report_id: str) -> Forbidden:
    return Forbidden(
        f"Report {report_id} is private. Only reports whose Viewers and Editors access are both "
        "Public can be used through the API; ask an Editor of the report to make it Public.",
        report_id=report_id,
    )
