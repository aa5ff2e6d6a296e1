"""Result retention: when a run's result file was removed, and an index for the cleanup job

``expired_at`` is set by the cleanup job once it deleted a download run's file from our
storage; the index on (state, finished_at) finds the runs past the result retention and the
run history without reading the whole table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from uvm_reporting.database.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("expired_at", UtcDateTime(precise=True), nullable=True))
    op.create_index("ix_runs_state_finished_at", "runs", ["state", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_state_finished_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("expired_at")
