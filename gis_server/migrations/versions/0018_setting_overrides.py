"""setting overrides (rule settings changed at run time), API keys' last use

``setting_overrides`` holds the values administrators set over the
environment and defaults (``gis_server.overrides``); a statement trigger sends
``NOTIFY gis_settings_changed`` on every change, whoever makes it, so every
server process reloads them. ``api_keys.last_used_at`` says when a key was
last accepted (to the minute).

Revision ID: 0018
Revises: 0012
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "setting_overrides",
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("value", JSONB(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("group_name", "field", name="pk_setting_overrides"),
        comment="Rule settings changed by administrators (over environment and "
        "defaults)",
    )
    op.execute(
        """
        CREATE FUNCTION gis_settings_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gis_settings_changed', TG_OP);
            RETURN NULL;
        END $$;
        CREATE TRIGGER setting_overrides_changed
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON setting_overrides
            FOR EACH STATEMENT EXECUTE FUNCTION gis_settings_changed();
        """
    )
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
    op.drop_table("setting_overrides")
    op.execute("DROP FUNCTION gis_settings_changed()")
