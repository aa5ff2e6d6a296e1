"""Scheduled exports: account ExternalId, report schedules, S3 destinations, fire times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from uvm_reporting.database.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("external_id", sa.String(64), nullable=True))
    accounts = sa.table("accounts", sa.column("id", sa.String), sa.column("external_id", sa.String))
    connection = op.get_bind()
    for (account_id,) in connection.execute(sa.select(accounts.c.id)).all():
        connection.execute(accounts.update().where(accounts.c.id == account_id).values(external_id=new_external_id()))
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("external_id", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(op.f("uq_accounts_external_id"), ["external_id"])

    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("schedule_active", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("next_fire_at", UtcDateTime(), nullable=True))
        batch.create_index(op.f("ix_reports_schedule_active_next_fire_at"), ["schedule_active", "next_fire_at"])

    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("compression", sa.String(10), nullable=True))
        batch.add_column(sa.Column("destination", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("scheduled_for", UtcDateTime(), nullable=True))
        batch.create_unique_constraint(op.f("uq_runs_report_id_scheduled_for"), ["report_id", "scheduled_for"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("uq_runs_report_id_scheduled_for"), type_="unique")
        batch.drop_column("scheduled_for")
        batch.drop_column("destination")
        batch.drop_column("compression")
    with op.batch_alter_table("reports") as batch:
        batch.drop_index(op.f("ix_reports_schedule_active_next_fire_at"))
        batch.drop_column("next_fire_at")
        batch.drop_column("schedule_active")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint(op.f("uq_accounts_external_id"), type_="unique")
        batch.drop_column("external_id")


def new_external_id() -> str:
    """At least 128 random bits (here 192), as the customer's trust policy will require it."""
    return secrets.token_hex(24)
