"""the Slurm cluster that ran a job (several clusters, issue 16)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cluster", sa.String(length=64), nullable=True))
    # (jobs submitted before say none: the service takes their resource's cluster)


def downgrade() -> None:
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.drop_column("cluster")
