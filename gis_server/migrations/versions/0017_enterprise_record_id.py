"""enterprise records are keyed by their record number

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-04 10:00:00

``feed_enterprise_records`` was keyed on (enterprise, recorded_on, kind,
note): a record without a note could not be loaded, and a record whose note
was corrected came back as a second record and was deducted twice from the
enterprise's credit score. The key is now the issuing platform's record
number, ``record_id``; the note is optional. Rows loaded before this revision
get ``legacy-<id>`` as their number (load them again under their real number
and delete the legacy rows to correct them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "feed_enterprise_records"
KEY = "uq_feed_enterprise_records_key"


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column("record_id", sa.Text(), nullable=True, comment="Record number"),
    )
    op.execute(f"UPDATE {TABLE} SET record_id = 'legacy-' || id")
    op.alter_column(TABLE, "record_id", nullable=False)
    op.drop_constraint(KEY, TABLE, type_="unique")
    op.create_unique_constraint(KEY, TABLE, ["record_id"])
    op.alter_column(TABLE, "note", nullable=True)


def downgrade() -> None:
    # the old key needs a note, distinct per record: a record loaded since
    # keeps its number in the note
    op.execute(
        f"UPDATE {TABLE} SET note = concat_ws(' ', note, '[' || record_id || ']') "
        "WHERE note IS NULL OR record_id NOT LIKE 'legacy-%'"
    )
    op.alter_column(TABLE, "note", nullable=False)
    op.drop_constraint(KEY, TABLE, type_="unique")
    op.create_unique_constraint(
        KEY, TABLE, ["enterprise", "recorded_on", "kind", "note"]
    )
    op.drop_column(TABLE, "record_id")
