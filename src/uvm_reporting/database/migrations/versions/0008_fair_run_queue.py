"""Fair run queue: each run's round, and indexes for per-account quotas and round-robin claims

A run's ``queue_round`` is its account's turn: an account's first queued run enters at the
round at the head of the queue, each further one a round later. Workers claim in round order,
so accounts take turns. Runs queued before this revision all get round 0 and are claimed
oldest first, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("queue_round", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_runs_state_queue_round_created_at_id", "runs", ["state", "queue_round", "created_at", "id"])
    op.create_index("ix_runs_account_id_state_queue_round", "runs", ["account_id", "state", "queue_round"])


def downgrade() -> None:
    op.drop_index("ix_runs_account_id_state_queue_round", table_name="runs")
    op.drop_index("ix_runs_state_queue_round_created_at_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("queue_round")
