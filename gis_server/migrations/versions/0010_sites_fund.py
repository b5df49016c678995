"""construction-site wages and provident-fund centres

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:30:00

The six feeds of the sites domain (``layers/supervision/sites.py``), the two
feeds of the fund domain and its map layer ``fund_centres``
(``layers/supervision/fund.py``), as ``layers/tables.py`` derives them; the
new layer gets the data-version triggers of 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: New layer tables at this revision (``gis_bump_layer_version`` is in 0001).
LAYER_IDS = ("fund_centres",)

#: Feed tables at this revision.
FEED_TABLES = (
    "feed_site_workers",
    "feed_site_attendance",
    "feed_site_wages",
    "feed_site_wage_transfers",
    "feed_site_deposits",
    "feed_enterprise_records",
    "feed_fund_metrics",
    "feed_fund_centre_limits",
)


def upgrade() -> None:
    op.create_table(
        "feed_enterprise_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("enterprise", sa.Text(), nullable=False, comment="Enterprise"),
        sa.Column("recorded_on", sa.Date(), nullable=False, comment="Recorded on"),
        sa.Column("kind", sa.Text(), nullable=False, comment="Kind"),
        sa.Column("severity", sa.Text(), nullable=True, comment="Severity"),
        sa.Column("note", sa.Text(), nullable=False, comment="Note"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('bad_behaviour', 'credit', 'blacklist')",
            name=op.f("ck_feed_enterprise_records_kind_choice"),
        ),
        sa.CheckConstraint(
            "severity IN ('general', 'serious', 'severe')",
            name=op.f("ck_feed_enterprise_records_severity_choice"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_enterprise_records")),
        sa.UniqueConstraint(
            "enterprise",
            "recorded_on",
            "kind",
            "note",
            name="uq_feed_enterprise_records_key",
        ),
        comment="Enterprise credit records (企业信用记录)",
    )
    op.create_index(
        "ix_feed_enterprise_records_enterprise",
        "feed_enterprise_records",
        ["enterprise"],
        unique=False,
    )
    op.create_index(
        "ix_feed_enterprise_records_recorded_on",
        "feed_enterprise_records",
        ["recorded_on"],
        unique=False,
    )
    op.create_table(
        "feed_fund_centre_limits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("centre_code", sa.Text(), nullable=False, comment="Centre code"),
        sa.Column(
            "large_flow_limit", sa.Double(), nullable=False, comment="Large-flow limit"
        ),
        sa.Column(
            "effective_from", sa.Date(), nullable=False, comment="Effective from"
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "large_flow_limit >= 0",
            name=op.f("ck_feed_fund_centre_limits_large_flow_limit_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_fund_centre_limits")),
        sa.UniqueConstraint(
            "centre_code", "effective_from", name="uq_feed_fund_centre_limits_key"
        ),
        comment="Large-flow limits of the centres (大额资金风险值)",
    )
    op.create_index(
        "ix_feed_fund_centre_limits_effective_from",
        "feed_fund_centre_limits",
        ["effective_from"],
        unique=False,
    )
    op.create_table(
        "feed_fund_metrics",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("centre_code", sa.Text(), nullable=False, comment="Centre code"),
        sa.Column("month", sa.Date(), nullable=False, comment="Month (first day)"),
        sa.Column(
            "deposits", sa.Double(), nullable=True, comment="Deposits (contributions)"
        ),
        sa.Column("withdrawals", sa.Double(), nullable=True, comment="Withdrawals"),
        sa.Column("loans_issued", sa.Double(), nullable=True, comment="Loans issued"),
        sa.Column(
            "principal_repaid", sa.Double(), nullable=True, comment="Principal repaid"
        ),
        sa.Column(
            "deposit_balance", sa.Double(), nullable=False, comment="Deposit balance"
        ),
        sa.Column(
            "loan_balance",
            sa.Double(),
            nullable=False,
            comment="Personal housing-loan balance",
        ),
        sa.Column(
            "overdue_loan_balance",
            sa.Double(),
            nullable=True,
            comment="Overdue loan balance",
        ),
        sa.Column(
            "large_flows_count", sa.Integer(), nullable=True, comment="Large flows"
        ),
        sa.Column(
            "largest_single_flow",
            sa.Double(),
            nullable=True,
            comment="Largest single flow",
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "deposit_balance >= 0",
            name=op.f("ck_feed_fund_metrics_deposit_balance_non_negative"),
        ),
        sa.CheckConstraint(
            "deposits >= 0", name=op.f("ck_feed_fund_metrics_deposits_non_negative")
        ),
        sa.CheckConstraint(
            "large_flows_count >= 0",
            name=op.f("ck_feed_fund_metrics_large_flows_count_non_negative"),
        ),
        sa.CheckConstraint(
            "largest_single_flow >= 0",
            name=op.f("ck_feed_fund_metrics_largest_single_flow_non_negative"),
        ),
        sa.CheckConstraint(
            "loan_balance >= 0",
            name=op.f("ck_feed_fund_metrics_loan_balance_non_negative"),
        ),
        sa.CheckConstraint(
            "loans_issued >= 0",
            name=op.f("ck_feed_fund_metrics_loans_issued_non_negative"),
        ),
        sa.CheckConstraint(
            "overdue_loan_balance >= 0",
            name=op.f("ck_feed_fund_metrics_overdue_loan_balance_non_negative"),
        ),
        sa.CheckConstraint(
            "principal_repaid >= 0",
            name=op.f("ck_feed_fund_metrics_principal_repaid_non_negative"),
        ),
        sa.CheckConstraint(
            "withdrawals >= 0",
            name=op.f("ck_feed_fund_metrics_withdrawals_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_fund_metrics")),
        sa.UniqueConstraint("centre_code", "month", name="uq_feed_fund_metrics_key"),
        comment="Provident fund monthly metrics (公积金月度指标)",
    )
    op.create_index(
        "ix_feed_fund_metrics_month", "feed_fund_metrics", ["month"], unique=False
    )
    op.create_table(
        "feed_site_attendance",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False, comment="Site id"),
        sa.Column("worker_id", sa.Text(), nullable=False, comment="Worker id (opaque)"),
        sa.Column("month", sa.Date(), nullable=False, comment="Month (first day)"),
        sa.Column("days", sa.Integer(), nullable=False, comment="Days attended"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "days >= 0", name=op.f("ck_feed_site_attendance_days_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_site_attendance")),
        sa.UniqueConstraint(
            "site_id", "worker_id", "month", name="uq_feed_site_attendance_key"
        ),
        comment="Monthly attendance (考勤)",
    )
    op.create_index(
        "ix_feed_site_attendance_month", "feed_site_attendance", ["month"], unique=False
    )
    op.create_index(
        "ix_feed_site_attendance_site_id",
        "feed_site_attendance",
        ["site_id"],
        unique=False,
    )
    op.create_table(
        "feed_site_deposits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False, comment="Site id"),
        sa.Column("paid_on", sa.Date(), nullable=False, comment="Paid on"),
        sa.Column("amount_yuan", sa.Double(), nullable=False, comment="Deposit"),
        sa.Column(
            "contract_amount_yuan",
            sa.Double(),
            nullable=True,
            comment="Contract amount",
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "amount_yuan >= 0",
            name=op.f("ck_feed_site_deposits_amount_yuan_non_negative"),
        ),
        sa.CheckConstraint(
            "contract_amount_yuan >= 0",
            name=op.f("ck_feed_site_deposits_contract_amount_yuan_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_site_deposits")),
        sa.UniqueConstraint("site_id", "paid_on", name="uq_feed_site_deposits_key"),
        comment="Wage deposits (工资保证金)",
    )
    op.create_index(
        "ix_feed_site_deposits_paid_on", "feed_site_deposits", ["paid_on"], unique=False
    )
    op.create_index(
        "ix_feed_site_deposits_site_id", "feed_site_deposits", ["site_id"], unique=False
    )
    op.create_table(
        "feed_site_wage_transfers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False, comment="Site id"),
        sa.Column(
            "transferred_on", sa.Date(), nullable=False, comment="Transferred on"
        ),
        sa.Column("amount_yuan", sa.Double(), nullable=False, comment="Amount"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "amount_yuan >= 0",
            name=op.f("ck_feed_site_wage_transfers_amount_yuan_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_site_wage_transfers")),
        sa.UniqueConstraint(
            "site_id", "transferred_on", name="uq_feed_site_wage_transfers_key"
        ),
        comment="Labour-cost transfers to the wage account (人工费用拨付)",
    )
    op.create_index(
        "ix_feed_site_wage_transfers_site_id",
        "feed_site_wage_transfers",
        ["site_id"],
        unique=False,
    )
    op.create_index(
        "ix_feed_site_wage_transfers_transferred_on",
        "feed_site_wage_transfers",
        ["transferred_on"],
        unique=False,
    )
    op.create_table(
        "feed_site_wages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False, comment="Site id"),
        sa.Column("worker_id", sa.Text(), nullable=False, comment="Worker id (opaque)"),
        sa.Column("month", sa.Date(), nullable=False, comment="Month (first day)"),
        sa.Column("paid_on", sa.Date(), nullable=False, comment="Paid on"),
        sa.Column("amount_yuan", sa.Double(), nullable=False, comment="Amount"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "amount_yuan >= 0", name=op.f("ck_feed_site_wages_amount_yuan_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_site_wages")),
        sa.UniqueConstraint(
            "site_id", "worker_id", "month", name="uq_feed_site_wages_key"
        ),
        comment="Wages paid (工资发放)",
    )
    op.create_index(
        "ix_feed_site_wages_month", "feed_site_wages", ["month"], unique=False
    )
    op.create_index(
        "ix_feed_site_wages_paid_on", "feed_site_wages", ["paid_on"], unique=False
    )
    op.create_index(
        "ix_feed_site_wages_site_id", "feed_site_wages", ["site_id"], unique=False
    )
    op.create_table(
        "feed_site_workers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False, comment="Site id"),
        sa.Column("worker_id", sa.Text(), nullable=False, comment="Worker id (opaque)"),
        sa.Column("enterprise", sa.Text(), nullable=True, comment="Employer"),
        sa.Column(
            "contract_signed",
            sa.Boolean(),
            nullable=True,
            comment="Labour contract signed",
        ),
        sa.Column("registered_on", sa.Date(), nullable=True, comment="Registered on"),
        sa.Column(
            "entered_on", sa.Date(), nullable=True, comment="First entered the site"
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_site_workers")),
        sa.UniqueConstraint("site_id", "worker_id", name="uq_feed_site_workers_key"),
        comment="Real-name worker registrations (实名制登记)",
    )
    op.create_index(
        "ix_feed_site_workers_registered_on",
        "feed_site_workers",
        ["registered_on"],
        unique=False,
    )
    op.create_index(
        "ix_feed_site_workers_site_id", "feed_site_workers", ["site_id"], unique=False
    )
    op.create_geospatial_table(
        "layer_fund_centres",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("code", sa.Text(), nullable=True, comment="Centre code"),
        sa.Column("name", sa.Text(), nullable=True, comment="Name"),
        sa.Column("name_zh", sa.Text(), nullable=True, comment="Chinese name"),
        sa.Column("city", sa.Text(), nullable=True, comment="Prefecture-level city"),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_fund_centres")),
        sa.UniqueConstraint(
            "source",
            "source_id",
            "source_part",
            name="uq_layer_fund_centres_source_key",
        ),
        comment="Housing provident fund centres (住房公积金管理中心)",
    )
    # create_geospatial_table does not pass the table comment on
    op.create_table_comment(
        "layer_fund_centres", "Housing provident fund centres (住房公积金管理中心)"
    )
    op.create_index(
        "ix_layer_fund_centres_code", "layer_fund_centres", ["code"], unique=False
    )
    op.create_geospatial_index(
        "ix_layer_fund_centres_geom",
        "layer_fund_centres",
        ["geom"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_geospatial_index(
        "ix_layer_fund_centres_geom_3857",
        "layer_fund_centres",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_index(
        "ix_layer_fund_centres_updated_at",
        "layer_fund_centres",
        ["updated_at"],
        unique=False,
    )

    for layer_id in LAYER_IDS:
        op.execute(
            f"CREATE TRIGGER bump_version AFTER INSERT OR UPDATE OR DELETE "
            f"ON layer_{layer_id} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION gis_bump_layer_version('{layer_id}')"
        )
        op.execute(
            f"CREATE TRIGGER bump_version_truncate AFTER TRUNCATE "
            f"ON layer_{layer_id} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION gis_bump_layer_version('{layer_id}')"
        )
        op.execute(
            f"INSERT INTO layer_versions (layer_id, version) VALUES ('{layer_id}', 0) "
            f"ON CONFLICT (layer_id) DO NOTHING"
        )


def downgrade() -> None:
    for layer_id in LAYER_IDS:
        op.drop_geospatial_table(f"layer_{layer_id}")
        op.execute(f"DELETE FROM layer_versions WHERE layer_id = '{layer_id}'")
    for table in reversed(FEED_TABLES):
        op.drop_table(table)
