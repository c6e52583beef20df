"""idempotency keys: creating calls made with an Idempotency-Key header, and their answers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 20:36:09
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uws_idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("boot", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "effect",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "route", "key", name="uq_idempotency_key"),
    )
    with op.batch_alter_table("uws_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_uws_idempotency_keys_expires"), ["expires"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("uws_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_idempotency_keys_expires"))
    op.drop_table("uws_idempotency_keys")
