"""Tables of the water domain besides its layers.

- ``water_observations``: readings per monitoring station, one row per
  (station, time, indicator) -- the primary key, so a repeated reading is not
  counted twice. Queries go by station and time range, which the primary-key
  btree (leading ``station_code, observed_at``) answers directly; a BRIN index
  on ``observed_at`` serves city-wide time windows when rows arrive in time
  order (daily streams), at ~40 kB for ten million rows.

  Plain table rather than monthly partitions, measured with
  ``bench/bench_water.py store --partitioned`` (10.35 M readings, 2 shared
  cores, warm cache): station + 7 / 30 day range, median 0.35-1.1 ms plain vs
  0.35-0.7 ms partitioned; one city-wide day 1.7-3.1 s plain vs 0.24-1.4 s
  partitioned. The by-station query the server runs is as fast either way, so
  the partition management (creating months ahead of data, locks on attach)
  is not worth it yet. NOTE: a bulk history load ordered by station defeats
  the BRIN index (each block range spans all times); if city-wide windows
  become a hot path, partition by month.
- ``water_samples``: the same readings in wide form, one row per (station,
  time) with one column per indicator of ``PIVOT_INDICATORS`` (NULL = not
  measured in that sample; a sample of other indicators only is a row of
  NULLs, as the GROUP BY pivot gives). Kept current by every writer of
  ``water_observations`` (``ingest.observations``) in the same transaction,
  so that scoring reads pre-pivoted rows instead of aggregating ~10 M
  readings (``bench/bench_water.py store``). Deleting readings must delete or
  recompute the affected samples; no code path deletes readings yet.
- ``water_observation_loads``: one row per ingest (source, file, report);
  each reading keeps the id of the load that brought it (an integer rather
  than the source text on ten million rows).
- ``water_patrol_records``: completed river-chief patrols, with what the chief
  saw (``black_odorous``: the inspection label the relapse model learns from).
- ``water_models``: registry of trained relapse models (version, file, metrics).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from layers import metadata

# indicators with a column in water_samples, in column order (the model's
# inputs; migration 0005 spells the same list)
PIVOT_INDICATORS = (
    "transparency",
    "do",
    "orp",
    "nh3n",
    "turbidity",
    "tp",
    "codmn",
    "cod",
    "ph",
    "depth",
    "rainfall",
)

observations = Table(
    "water_observations",
    metadata,
    Column("station_code", Text, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("indicator", Text, nullable=False),
    Column("value", Double, nullable=False),
    Column("unit", Text, nullable=False),
    # which load brought the reading (water_observation_loads.id); no foreign
    # key, so that bulk loads skip a per-row lookup
    Column("load_id", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint(
        "station_code", "observed_at", "indicator", name="pk_water_observations"
    ),
    comment="Water-quality readings per station (水质监测数据)",
)
Index(
    "ix_water_observations_observed_at_brin",
    observations.c.observed_at,
    postgresql_using="brin",
)

samples = Table(
    "water_samples",
    metadata,
    Column("station_code", Text, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    *(Column(k, Double) for k in PIVOT_INDICATORS),
    PrimaryKeyConstraint("station_code", "observed_at", name="pk_water_samples"),
    comment="Readings pivoted to one row per station and time (NULL = missing)",
)

observation_loads = Table(
    "water_observation_loads",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    Column("source", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column(
        "loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    Column("report", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    comment="One row per observation ingest (provenance of readings)",
)

patrol_records = Table(
    "water_patrol_records",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("chief_id", Text, nullable=False),
    Column("segment_code", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_min", Double, nullable=False),
    Column("distance_km", Double, nullable=False),
    Column("black_odorous", Boolean, comment="What the chief saw; NULL = not judged"),
    Column("problems", Text),
    Column(
        "meets_standard",
        Boolean,
        nullable=False,
        comment="Lasted >= 10 min and covered >= 1 km (2021 guidance)",
    ),
    Column(
        "recorded_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    CheckConstraint("duration_min >= 0", name="duration_non_negative"),
    CheckConstraint("distance_km >= 0", name="distance_non_negative"),
    comment="Completed river-chief patrols (巡河记录)",
)
Index(
    "ix_water_patrol_records_chief",
    patrol_records.c.chief_id,
    patrol_records.c.started_at,
)
Index(
    "ix_water_patrol_records_segment",
    patrol_records.c.segment_code,
    patrol_records.c.started_at,
)

model_registry = Table(
    "water_models",
    metadata,
    Column("version", Text, primary_key=True),
    Column(
        "trained_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    Column("path", Text, nullable=False),
    Column("features", JSONB, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("labelled", Integer, nullable=False),
    Column("segments", Integer, nullable=False),
    comment="Trained relapse models (返黑返臭预测模型)",
)
