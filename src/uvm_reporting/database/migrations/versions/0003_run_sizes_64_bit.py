"""Run sizes and row counts as 64-bit integers

A result file of 2 GiB or more (10M findings as CSV) overflowed the 32-bit INTEGER columns on
PostgreSQL, and its run could not be recorded as Completed. SQLite stores either in 64 bits;
there the table is rebuilt (Alembic's batch mode) so that the declared types match.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = ("row_count", "size_bytes")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in _COLUMNS:
            batch.alter_column(name, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in _COLUMNS:
            batch.alter_column(name, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
