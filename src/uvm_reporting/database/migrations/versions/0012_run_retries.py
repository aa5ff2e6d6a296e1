"""Run retries: when a run that failed for a passing reason may be claimed again

``next_attempt_at`` is set while a run waits, queued, for its next attempt after a transient
failure (S3 throttling, a dropped database connection); workers do not claim it before then.
The failed attempt's code and message stay in ``error_code`` and ``error_message`` meanwhile.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from uvm_reporting.database.types import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("next_attempt_at", UtcDateTime(precise=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("next_attempt_at")
