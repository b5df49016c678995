"""The vocabulary a layer is declared in.

A layer is one :class:`LayerSpec`: its collection id (public API), geometry
types, typed properties with the source names they are matched from, time
fields, zoom range and style hints. Everything else -- the table, the ingest
field mapping, the OGC queryables, the map legend -- is derived from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

PropType = Literal["text", "int", "float", "bool", "date", "datetime", "json"]

#: Geometry types a layer may accept, in OGC simple-feature spelling.
GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)

#: Python type each property type arrives as after coercion.
PYTHON_TYPES: dict[str, type] = {
    "text": str,
    "int": int,
    "float": float,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
    "json": object,
}


@dataclass(frozen=True)
class Prop:
    """One typed property of a layer.

    ``aliases`` are source field names matched to this property by default,
    compared case-insensitively and ignoring ``-``, ``_``, ``:`` and spaces.
    ``choices`` restricts a text property to a closed set of codes.
    """

    name: str
    type: PropType
    title: str
    title_zh: str = ""
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    unit: str | None = None
    description: str = ""
    #: usable by the ``datetime`` filter of the features API
    temporal: bool = False
    #: non-negative numbers only (heights, areas, counts)
    non_negative: bool = False
    #: a btree index: for properties filtered on a hot path (hazard lists)
    indexed: bool = False


@dataclass(frozen=True)
class Style:
    """Map style hints; ``color_by`` maps a property's values to colours."""

    color: str = "#3388ff"
    fill_color: str | None = None
    weight: float = 2.0
    radius: float = 5.0
    color_by: str | None = None
    palette: dict[str, str] = field(default_factory=dict)


#: The roles accounts have (``gis-server users add --role``).
ROLES = ("admin", "analyst", "housing_officer", "river_chief")


@dataclass(frozen=True)
class Access:
    """Who may read and edit a layer's features.

    ``read``/``write``: roles that read (edit) every feature. ``scoped``:
    roles that read only the features whose ``column`` equals the account's
    own attribute (a housing officer's district, a river chief's chief id),
    and, when also in ``scoped_write``, edit those. A role in none of them
    does not see the layer at all. Administrators always read and edit.
    Enforced by ``gis_server.auth.policy`` and, in the database, by the
    row-level security policies derived from these declarations.
    """

    read: tuple[str, ...] = ("analyst",)
    write: tuple[str, ...] = ()
    scoped: tuple[tuple[str, str], ...] = ()  # (role, column)
    scoped_write: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        roles = {*self.read, *self.write, *(r for r, _ in self.scoped)}
        unknown = roles - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        if set(self.scoped_write) - {r for r, _ in self.scoped}:
            raise ValueError("scoped_write roles must be scoped")


#: Reference layers every account reads (boundaries, roads).
PUBLIC_REFERENCE = Access(read=("analyst", "housing_officer", "river_chief"))


@dataclass(frozen=True)
class LayerSpec:
    """A map layer: one table of features in EPSG:4326.

    ``geometry_types`` lists the accepted types after promotion: a layer
    declared ``("MultiPolygon",)`` accepts polygons and stores them as
    single-part multipolygons.
    """

    id: str
    title: str
    title_zh: str
    description: str
    geometry_types: tuple[str, ...]
    properties: tuple[Prop, ...]
    #: source field names taken as the source's own feature id
    id_aliases: tuple[str, ...] = ("id", "fid", "source_id", "osm_id", "objectid")
    min_zoom: int = 0
    max_zoom: int = 22
    style: Style = field(default_factory=Style)
    #: computed by the server (risk zones, warnings), not ingested
    computed: bool = False
    #: keywords for the collection document
    keywords: tuple[str, ...] = ()
    #: who reads and edits it (analysts read, administrators edit, by default)
    access: Access = field(default_factory=Access)

    def __post_init__(self) -> None:
        bad = [g for g in self.geometry_types if g not in GEOMETRY_TYPES]
        if bad or not self.geometry_types:
            raise ValueError(f"layer {self.id}: bad geometry types {bad}")
        names = [p.name for p in self.properties]
        if len(set(names)) != len(names):
            raise ValueError(f"layer {self.id}: duplicate property names")
        for _, column in self.access.scoped:
            if column not in names:
                raise ValueError(f"layer {self.id}: scope column {column} undeclared")
        reserved = set(names) & RESERVED_COLUMNS
        if reserved:
            raise ValueError(f"layer {self.id}: reserved property names {reserved}")

    @property
    def table(self) -> str:
        """Name of the table holding this layer's features."""
        return f"layer_{self.id}"

    @property
    def prop_by_name(self) -> dict[str, Prop]:
        return {p.name: p for p in self.properties}

    @property
    def temporal_props(self) -> tuple[Prop, ...]:
        return tuple(p for p in self.properties if p.temporal)

    @property
    def is_multi_only(self) -> bool:
        """Whether every accepted type is a Multi* type (single parts promoted)."""
        return all(g.startswith("Multi") for g in self.geometry_types)

    def accepts(self, geom_type: str) -> str | None:
        """The stored type for a source geometry type, or None if refused.

        >>> from layers import get_layer
        >>> get_layer("buildings").accepts("Polygon")
        'MultiPolygon'
        >>> get_layer("buildings").accepts("Point") is None
        True
        """
        if geom_type in self.geometry_types:
            return geom_type
        multi = f"Multi{geom_type}"
        if multi in self.geometry_types:
            return multi
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (used by the CLI and the collection documents)."""
        return {
            "id": self.id,
            "title": self.title,
            "title_zh": self.title_zh,
            "geometry_types": list(self.geometry_types),
            "properties": {
                p.name: {"type": p.type, "title": p.title, "choices": p.choices}
                for p in self.properties
            },
        }


#: Columns every layer table has besides its own properties.
RESERVED_COLUMNS = frozenset(
    {
        "id",
        "source",
        "source_id",
        "source_part",
        "extra",
        "geom",
        "geom_3857",
        "updated_at",
    }
)
