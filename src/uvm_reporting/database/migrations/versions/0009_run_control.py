"""Run control: cancel requests and progress of started runs

``cancel_requested_at`` is set when someone cancels a started run; its worker's heartbeat reads
it and stops the export. ``rows_written`` and ``bytes_written`` are a started run's progress,
written by the same heartbeat.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from uvm_reporting.database.types import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cancel_requested_at", UtcDateTime(precise=True)))
        batch.add_column(sa.Column("rows_written", sa.BigInteger()))
        batch.add_column(sa.Column("bytes_written", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("bytes_written")
        batch.drop_column("rows_written")
        batch.drop_column("cancel_requested_at")
