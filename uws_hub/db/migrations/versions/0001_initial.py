"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:05:07.950064
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# JSON everywhere, JSONB on PostgreSQL (as uws_hub.db.models.JSONType)
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "uws_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("details", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uws_audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uws_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_uws_audit_events_time"), ["time"], unique=False)

    op.create_table(
        "uws_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("related", JSONType, nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.DateTime(), nullable=False),
        sa.Column("sent", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uws_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_uws_notifications_pending", ["sent", "next_attempt"], unique=False
        )

    op.create_table(
        "uws_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("first_name", sa.String(length=150), nullable=True),
        sa.Column("last_name", sa.String(length=150), nullable=True),
        sa.Column("posix_name", sa.String(length=64), nullable=True),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("gid", sa.Integer(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_activity", sa.DateTime(), nullable=True),
        sa.Column("workspaces_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "uws_external_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("external_username", sa.String(length=255), nullable=True),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("gid", sa.Integer(), nullable=True),
        sa.Column("details", JSONType, nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["uws_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id", name="uq_identity_source_id"),
    )
    with op.batch_alter_table("uws_external_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_uws_external_identities_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "uws_user_quotas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("disk_limit", sa.BigInteger(), nullable=True),
        sa.Column("core_seconds_limit", sa.BigInteger(), nullable=True),
        sa.Column("disk_used", sa.BigInteger(), nullable=False),
        sa.Column("core_seconds_used", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["uws_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "uws_workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("file_path", sa.String(length=1024), nullable=False),
        sa.Column("disk_space", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.BigInteger(), nullable=False),
        sa.Column("datetime_created", sa.DateTime(), nullable=False),
        sa.Column("datetime_last_modified", sa.DateTime(), nullable=False),
        sa.Column("datetime_last_job_launch", sa.DateTime(), nullable=True),
        sa.Column("datetime_scanned", sa.DateTime(), nullable=True),
        sa.Column("datetime_deleted", sa.DateTime(), nullable=True),
        sa.Column("workspace_details", JSONType, nullable=False),
        sa.Column("pending_details", JSONType, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("default_job_type", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["uws_users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uws_workspaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uws_workspaces_status"), ["status"], unique=False)
        batch_op.create_index("ix_uws_workspaces_user_status", ["user_id", "status"], unique=False)

    op.create_table(
        "uws_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("resource_job_id", sa.BigInteger(), nullable=True),
        sa.Column("server_name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("datetime_created", sa.DateTime(), nullable=False),
        sa.Column("datetime_start", sa.DateTime(), nullable=True),
        sa.Column("datetime_end", sa.DateTime(), nullable=True),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("time_limit_s", sa.BigInteger(), nullable=True),
        sa.Column("core_seconds", sa.BigInteger(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("resource_options", JSONType, nullable=False),
        sa.Column("job_details", JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["uws_users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["uws_workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uws_jobs_status"), ["status"], unique=False)
        batch_op.create_index("ix_uws_jobs_user_status", ["user_id", "status"], unique=False)
        batch_op.create_index(
            "ix_uws_jobs_workspace_status", ["workspace_id", "status"], unique=False
        )

    op.create_table(
        "uws_shared_workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("original_workspace_id", sa.Integer(), nullable=True),
        sa.Column("shared_workspace_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("is_accepted", sa.Boolean(), nullable=False),
        sa.Column("datetime_share_created", sa.DateTime(), nullable=False),
        sa.Column("datetime_share_accepted", sa.DateTime(), nullable=True),
        sa.Column("last_job_type", sa.String(length=64), nullable=True),
        sa.Column("last_resource_options", JSONType, nullable=True),
        sa.Column("copy_status", sa.String(length=32), nullable=False),
        sa.Column("copy_files_total", sa.BigInteger(), nullable=False),
        sa.Column("copy_files_done", sa.BigInteger(), nullable=False),
        sa.Column("copy_bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("copy_bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("copy_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["original_workspace_id"], ["uws_workspaces.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["uws_users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["uws_users.id"],
        ),
        sa.ForeignKeyConstraint(["shared_workspace_id"], ["uws_workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shared_workspace_id"),
    )
    with op.batch_alter_table("uws_shared_workspaces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_uws_shared_workspaces_original_workspace_id"),
            ["original_workspace_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_uws_shared_workspaces_recipient_id"), ["recipient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_uws_shared_workspaces_sender_id"), ["sender_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("uws_shared_workspaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_shared_workspaces_sender_id"))
        batch_op.drop_index(batch_op.f("ix_uws_shared_workspaces_recipient_id"))
        batch_op.drop_index(batch_op.f("ix_uws_shared_workspaces_original_workspace_id"))

    op.drop_table("uws_shared_workspaces")
    with op.batch_alter_table("uws_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_uws_jobs_workspace_status")
        batch_op.drop_index("ix_uws_jobs_user_status")
        batch_op.drop_index(batch_op.f("ix_uws_jobs_status"))

    op.drop_table("uws_jobs")
    with op.batch_alter_table("uws_workspaces", schema=None) as batch_op:
        batch_op.drop_index("ix_uws_workspaces_user_status")
        batch_op.drop_index(batch_op.f("ix_uws_workspaces_status"))

    op.drop_table("uws_workspaces")
    op.drop_table("uws_user_quotas")
    with op.batch_alter_table("uws_external_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_external_identities_user_id"))

    op.drop_table("uws_external_identities")
    op.drop_table("uws_users")
    with op.batch_alter_table("uws_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_uws_notifications_pending")

    op.drop_table("uws_notifications")
    with op.batch_alter_table("uws_audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uws_audit_events_time"))
        batch_op.drop_index(batch_op.f("ix_uws_audit_events_action"))

    op.drop_table("uws_audit_events")
