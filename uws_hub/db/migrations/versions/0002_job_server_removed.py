"""job server removed flag

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 14:30:32
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("server_removed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.drop_column("server_removed")
