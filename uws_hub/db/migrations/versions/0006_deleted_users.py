"""people deleted from the hub: their uws user row becomes a tombstone with the time of deletion

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 05:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uws_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("hub_seen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("uws_users", schema=None) as batch_op:
        batch_op.drop_column("hub_seen")
        batch_op.drop_column("deleted_at")
