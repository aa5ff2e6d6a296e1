"""A role of this deployment's own AWS account is refused: when a report's schedule is saved, and
when a run would deliver through it (the confused deputy: README, "Scheduled exports to S3")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.moto_server import DUMMY_KEYS, isolated_session
from tests.support.ports import free_port
from tests.support.reports import ALL_FINDINGS_REPORT
from uvm_reporting.application.execute_run import RunExecutor
from uvm_reporting.application.reports import Reports
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import enqueue_run
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.errors import BadUserInput, RunErrorCode, run_failure
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.services import Services
from uvm_reporting.storage.s3 import ROLE_IN_OPERATOR_ACCOUNT, DeliveryError, S3ClientFactory
from uvm_reporting.storage.s3.customer_buckets import S3CustomerBuckets

OPERATOR_ACCOUNT = "111122223333"
OPERATOR_ROLE = f"arn:aws:iam::{OPERATOR_ACCOUNT}:role/uvm-reporting-exports"
CUSTOMER_ROLE = "arn:aws:iam::444455556666:role/uvm-export"


def buckets(operator_account_ids: frozenset[str] | None = frozenset({OPERATOR_ACCOUNT})) -> S3CustomerBuckets:
    """Customer buckets of a deployment whose own account is OPERATOR_ACCOUNT; nothing reaches AWS
    (the endpoint is a closed port)."""
    return S3CustomerBuckets(
        S3ClientFactory(
            f"http://127.0.0.1:{free_port()}",
            session=isolated_session(DUMMY_KEYS),
            operator_account_ids=operator_account_ids,
        )
    )


def scheduled(role_arn: str) -> dict[str, Any]:
    delivery = {"method": "s3", "bucket": "customer-exports", "region": "us-east-1", "role_arn": role_arn}
    return {
        **ALL_FINDINGS_REPORT,
        "schedule": {"format": "csv", "frequency": "daily", "time": "06:00", "delivery": delivery},
    }


def test_a_schedule_with_a_role_of_the_operators_account_is_refused_when_saved(
    services: Services, public_report: Report
) -> None:
    reports = Reports(services.engine, buckets())
    saves: list[Callable[[], Report]] = [
        lambda: reports.create_report(public_report.account_id, scheduled(OPERATOR_ROLE)),
        lambda: reports.update_report(public_report.account_id, public_report.id, scheduled(OPERATOR_ROLE)),
    ]
    for save in saves:
        with pytest.raises(BadUserInput) as raised:
            save()
        assert raised.value.code == "BAD_USER_INPUT"
        assert raised.value.message.startswith(
            f"schedule.delivery.role_arn: names a role in this deployment's own AWS account ({OPERATOR_ACCOUNT})"
        )
        assert raised.value.details["path"] == "schedule.delivery.role_arn"
    saved = reports.create_report(public_report.account_id, scheduled(CUSTOMER_ROLE))
    assert saved.schedule is not None
    assert saved.schedule.delivery.role_arn == CUSTOMER_ROLE


def test_a_save_is_not_held_up_when_sts_cannot_be_asked(services: Services, public_report: Report) -> None:
    """The save's check is early help; the delivery checks again and fails closed."""
    reports = Reports(services.engine, buckets(operator_account_ids=None))
    assert reports.create_report(public_report.account_id, scheduled(OPERATOR_ROLE)).schedule is not None


def test_a_run_through_a_role_of_the_operators_account_fails_before_any_assume_role(
    services: Services, public_report: Report
) -> None:
    """A report saved before the operator's account ids were known (or by the operator's CLI)."""
    report = create_report(services.engine, public_report.account_id, scheduled(OPERATOR_ROLE))
    run = enqueue_run(
        services.engine,
        account_id=report.account_id,
        report_id=report.id,
        delivery=Delivery.S3,
        format="csv",
        definition=report.definition.to_json(),
        requested_by="test",
        destination={"bucket": "customer-exports", "key": "r.csv", "region": "us-east-1", "role_arn": OPERATOR_ROLE},
    )
    executor = RunExecutor(services.engine, services.storage, Exporter(services.engine), buckets())
    with pytest.raises(DeliveryError) as raised:
        executor.execute(run)
    failure = run_failure(raised.value)
    assert failure.code is RunErrorCode.DELIVERY_FAILED
    assert failure.message.startswith(f"{ROLE_IN_OPERATOR_ACCOUNT}: The role {OPERATOR_ROLE} names a role in this")
