"""supervised listing (挂牌督办) of a supervision warning

The ``listed`` property of ``layers/supervision/warnings.py``: a warning whose
rectification is supervised-listed (a severe inspection problem), visible and
filterable (``GET /supervision/warnings?listed=true``). Existing warnings take
it from their evidence (the inspections recorded ``supervised_listing`` there).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "layer_supervision_warnings"


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column(
            "listed",
            sa.Boolean(),
            nullable=True,
            comment="Supervised listing (挂牌督办)",
        ),
    )
    op.execute(
        f"UPDATE {TABLE} SET listed = CASE "
        "WHEN jsonb_typeof(evidence->'supervised_listing') = 'boolean' "
        "THEN (evidence->>'supervised_listing')::boolean ELSE false END"
    )


def downgrade() -> None:
    op.drop_column(TABLE, "listed")
