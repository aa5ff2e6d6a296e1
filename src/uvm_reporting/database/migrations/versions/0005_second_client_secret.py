"""A second active secret per API client, while the client rotates its secret

``previous_secret_hash`` holds the secret that was current before ``clients rotate-secret``; it
keeps working until ``clients revoke-secret --old`` clears it. ``secret_rotated_at`` says when
the newest secret was made (NULL: the secret the client was created with).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from uvm_reporting.database.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients") as batch:
        batch.add_column(sa.Column("previous_secret_hash", sa.String(200), nullable=True))
        batch.add_column(sa.Column("secret_rotated_at", UtcDateTime(precise=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("secret_rotated_at")
        batch.drop_column("previous_secret_hash")
