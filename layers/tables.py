"""SQLAlchemy tables derived from the layer declarations.

Every vector layer table has the same frame -- ``id`` (stable, never reused),
``source`` / ``source_id`` / ``source_part`` (the upsert key: pieces of one
source object that share an id are numbered, not merged or dropped),
``extra`` (source properties the layer does not declare), ``geom`` in
EPSG:4326 with a GiST index, a stored Web Mercator copy ``geom_3857`` for
tiles, and ``updated_at`` -- plus one typed column per declared property.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from layers.base import LayerSpec
from layers.catalog import LAYERS
from layers.feeds import FeedSpec, all_feeds

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _sql_type(prop_type: str) -> TypeEngine:
    return {
        "text": Text(),
        "int": Integer(),
        "float": Double(),
        "bool": Boolean(),
        "date": Date(),
        "datetime": DateTime(timezone=True),
        "json": JSONB(),
    }[prop_type]


def _geometry_type(spec: LayerSpec) -> str:
    return (
        spec.geometry_types[0].upper() if len(spec.geometry_types) == 1 else "GEOMETRY"
    )


def build_table(
    spec: LayerSpec, meta: MetaData, referenced: frozenset[str] = frozenset()
) -> Table:
    """The table for one layer declaration, registered in ``meta``.

    ``referenced``: columns other tables name its features by (a feed's
    subject key): indexed, as the row-level policy of those tables looks a
    feature up by them for every scoped read.
    """
    columns: list = [
        Column("id", BigInteger, Identity(always=False), primary_key=True),
        Column("source", Text, nullable=False),
        Column("source_id", Text, nullable=False),
        Column("source_part", Integer, nullable=False, server_default=text("0")),
    ]
    constraints: list = [
        UniqueConstraint(
            "source", "source_id", "source_part", name=f"uq_{spec.table}_source_key"
        ),
    ]
    for prop in spec.properties:
        columns.append(Column(prop.name, _sql_type(prop.type), comment=prop.title))
        if prop.choices:
            allowed = ", ".join(f"'{c}'" for c in prop.choices)
            constraints.append(
                CheckConstraint(
                    f"{prop.name} IN ({allowed})", name=f"{prop.name}_choice"
                )
            )
        if prop.non_negative:
            constraints.append(
                CheckConstraint(f"{prop.name} >= 0", name=f"{prop.name}_non_negative")
            )
    columns += [
        Column("extra", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column(
            "geom",
            Geometry(_geometry_type(spec), srid=4326, spatial_index=False),
            nullable=False,
        ),
        Column(
            "geom_3857",
            Geometry(_geometry_type(spec), srid=3857, spatial_index=False),
            Computed("ST_Transform(geom, 3857)", persisted=True),
        ),
        Column(
            "updated_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
        ),
    ]
    if len(spec.geometry_types) > 1:
        allowed = ", ".join(f"'{g.upper()}'" for g in spec.geometry_types)
        constraints.append(
            CheckConstraint(f"GeometryType(geom) IN ({allowed})", name="geom_type")
        )
    table = Table(
        spec.table,
        meta,
        *columns,
        *constraints,
        comment=f"{spec.title} ({spec.title_zh})",
    )
    Index(f"ix_{spec.table}_geom", table.c.geom, postgresql_using="gist")
    Index(f"ix_{spec.table}_geom_3857", table.c.geom_3857, postgresql_using="gist")
    Index(f"ix_{spec.table}_updated_at", table.c.updated_at)
    scope_columns = {column for _, column in spec.access.scoped}
    for prop in spec.properties:
        # scope columns too: row-level policies filter on them for every
        # scoped caller's query
        if (
            prop.temporal
            or prop.indexed
            or prop.name in scope_columns
            or prop.name in referenced
        ):
            Index(f"ix_{spec.table}_{prop.name}", table.c[prop.name])
    if "source_id" in referenced:
        Index(f"ix_{spec.table}_source_id", table.c.source_id)
    return table


def _subject_keys() -> dict[str, frozenset[str]]:
    """Layer id -> the columns record feeds name its features by."""
    keys: dict[str, set[str]] = {}
    for feed in all_feeds():
        if feed.subject is not None:
            keys.setdefault(feed.subject[0], set()).add(feed.subject_key)
    return {layer: frozenset(k) for layer, k in keys.items()}


#: Per-layer data version, bumped by a statement trigger on every change, so
#: caches and ETags follow edits made by any path (API, ingest, plain SQL).
layer_versions = Table(
    "layer_versions",
    metadata,
    Column("layer_id", Text, primary_key=True),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column(
        "changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
)

#: Registered GeoTIFFs (``gis-server ingest raster NAME PATH``).
raster_layers = Table(
    "raster_layers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("path", Text, nullable=False),
    Column("original_path", Text, nullable=False),
    Column("crs", Text),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("band_count", Integer, nullable=False),
    Column("dtypes", JSONB, nullable=False),
    Column("nodata", Double),
    Column("res_x", Double, nullable=False),
    Column("res_y", Double, nullable=False),
    Column("bounds_native", JSONB, nullable=False),
    Column("footprint", Geometry("POLYGON", srid=4326, spatial_index=False)),
    Column("sha256", Text, nullable=False),
    Column(
        "registered_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
)


def build_feed_table(spec: FeedSpec, meta: MetaData) -> Table:
    """The table of one record feed: typed columns, ``extra``, unique ``key``."""
    columns: list = [Column("id", BigInteger, Identity(always=False), primary_key=True)]
    constraints: list = [
        UniqueConstraint(*spec.key, name=f"uq_{spec.table}_key"),
    ]
    for prop in spec.columns:
        columns.append(
            Column(
                prop.name,
                _sql_type(prop.type),
                nullable=prop.name not in spec.must_have,
                comment=prop.title,
            )
        )
        if prop.choices:
            allowed = ", ".join(f"'{c}'" for c in prop.choices)
            constraints.append(
                CheckConstraint(
                    f"{prop.name} IN ({allowed})", name=f"{prop.name}_choice"
                )
            )
        if prop.non_negative:
            constraints.append(
                CheckConstraint(f"{prop.name} >= 0", name=f"{prop.name}_non_negative")
            )
    columns += [
        Column("source", Text, nullable=False),
        Column("extra", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column(
            "loaded_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
        ),
    ]
    table = Table(
        spec.table,
        meta,
        *columns,
        *constraints,
        comment=f"{spec.title} ({spec.title_zh})",
    )
    for prop in spec.columns:
        if prop.temporal or prop.indexed:
            Index(f"ix_{spec.table}_{prop.name}", table.c[prop.name])
    return table


_KEYS = _subject_keys()
_TABLES: dict[str, Table] = {
    spec.id: build_table(spec, metadata, _KEYS.get(spec.id, frozenset()))
    for spec in LAYERS
}
_FEED_TABLES: dict[str, Table] = {
    spec.id: build_feed_table(spec, metadata) for spec in all_feeds()
}


def feed_table(feed_id: str) -> Table:
    """The SQLAlchemy table of a declared record feed."""
    return _FEED_TABLES[feed_id]


def table_for(layer_id: str) -> Table:
    """The SQLAlchemy table of a declared layer."""
    return _TABLES[layer_id]
