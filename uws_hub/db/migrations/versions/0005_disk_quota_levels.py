"""disk quota levels told to people (90 % / 100 %) and since when, for the grace period

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:48:28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uws_user_quotas", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("disk_level", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("disk_level_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uws_user_quotas", schema=None) as batch_op:
        batch_op.drop_column("disk_level_since")
        batch_op.drop_column("disk_level")
