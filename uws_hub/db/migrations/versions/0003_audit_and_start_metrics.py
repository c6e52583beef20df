"""audit log fields (actor kind, whose resource, request ip and id); job start observed flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:12:40
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uws_audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("actor_kind", sa.String(length=16), server_default="user", nullable=False)
        )
        batch_op.add_column(sa.Column("username", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("ip", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_uws_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_uws_audit_events_username"), ["username"], unique=False
        )
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("start_observed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_uws_jobs_start_observed"), ["start_observed"], unique=False
        )
    # jobs from before this revision are history: metrics count starts from now on
    op.execute(sa.text("UPDATE uws_jobs SET start_observed = :yes").bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_jobs_start_observed"))
        batch_op.drop_column("start_observed")
    with op.batch_alter_table("uws_audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_audit_events_username"))
        batch_op.drop_index(batch_op.f("ix_uws_audit_events_actor"))
        batch_op.drop_column("request_id")
        batch_op.drop_column("ip")
        batch_op.drop_column("username")
        batch_op.drop_column("actor_kind")
