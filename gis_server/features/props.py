"""What a layer exposes through the features API, derived from its LayerSpec.

Decisions (documented in the collection documents and the OpenAPI text):

- ``id`` of a feature is the table's ``id`` (stable, never reused).
- ``properties`` are the layer's declared properties, then ``updated_at``
  (when the row last changed), then ``extra``: the source attributes the layer
  does not declare, as one nested object (never merged in, so a source field
  cannot shadow or retype a declared property).
- Queryables (filters, equality parameters, ``sortby``) are the declared
  properties, ``id`` and ``updated_at``; ``extra`` is not queryable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table

from gis_server.errors import InvalidParameter
from layers import LayerSpec, table_for

#: Name of the non-declared source attributes in a feature's properties.
EXTRA = "extra"
#: Frame columns that are exposed as properties / queryables.
UPDATED_AT = "updated_at"
#: Names a filter may use for the geometry.
GEOMETRY_NAMES = ("geom", "geometry")

_JSON_TYPES = {
    "text": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "json": {"type": "object"},
}


@dataclass(frozen=True)
class Queryable:
    """A name usable in filters and sorting, its column and property type."""

    name: str
    type: str
    column: Column


def output_properties(spec: LayerSpec) -> tuple[str, ...]:
    """Property names of a feature of ``spec``, in output order."""
    return (*(p.name for p in spec.properties), UPDATED_AT, EXTRA)


def queryables(spec: LayerSpec) -> dict[str, Queryable]:
    """Queryable names of ``spec`` mapped to their columns."""
    table: Table = table_for(spec.id)
    found = {"id": Queryable("id", "int", table.c.id)}
    for prop in spec.properties:
        found[prop.name] = Queryable(prop.name, prop.type, table.c[prop.name])
    found[UPDATED_AT] = Queryable(UPDATED_AT, "datetime", table.c.updated_at)
    return found


def temporal_fields(spec: LayerSpec) -> tuple[str, ...]:
    """Fields the ``datetime`` parameter can apply to; the first is the default.

    The layer's own temporal properties come first (a building's appraisal
    date says more than when its row was loaded); ``updated_at`` is always
    available.
    """
    return (*(p.name for p in spec.temporal_props), UPDATED_AT)


def coerce_value(name: str, prop_type: str, value: Any) -> Any:
    """A filter value as the Python type of a property, or InvalidParameter.

    Examples
    --------
    >>> coerce_value("floors", "int", "7")
    7
    >>> coerce_value("appraised_on", "date", "2024-05-01")
    datetime.date(2024, 5, 1)
    """
    if prop_type not in _JSON_TYPES or prop_type == "json":
        raise InvalidParameter(f"property {name!r} cannot be filtered")
    try:
        if prop_type == "text":
            if isinstance(value, bool | dict | list):
                raise TypeError
            return str(value)
        if prop_type == "int":
            if isinstance(value, bool) or (
                isinstance(value, float) and not value.is_integer()
            ):
                raise TypeError
            return int(value)
        if prop_type == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if prop_type == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError
        if prop_type == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value))
        if prop_type == "datetime":
            if isinstance(value, dt.datetime):
                return _aware(value)
            if isinstance(value, dt.date):
                return dt.datetime.combine(value, dt.time(), dt.UTC)
        return _aware(dt.datetime.fromisoformat(str(value)))
    except (TypeError, ValueError, OverflowError):
        pass
    raise InvalidParameter(
        f"value {value!r} is not a valid {prop_type} for property {name!r}"
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def feature_schema(spec: LayerSpec, url: str) -> dict[str, Any]:
    """The JSON Schema of a feature's properties (what GDAL reads field types from)."""
    schema = queryables_schema(spec, url)
    props = schema["properties"]
    props["geom"]["x-ogc-role"] = "primary-geometry"
    props["id"]["x-ogc-role"] = "id"
    props[EXTRA] = {
        "title": "Source attributes not declared by the layer",
        "type": "object",
    }
    schema["title"] = f"{spec.title}: features"
    return schema


def queryables_schema(spec: LayerSpec, url: str) -> dict[str, Any]:
    """The JSON Schema of the queryables of ``spec`` (OGC API Features Part 3)."""
    props: dict[str, Any] = {
        "id": {"title": "Feature id", "type": "integer"},
        "geom": {
            "title": "Geometry",
            "format": "geometry-any"
            if len(spec.geometry_types) > 1
            else f"geometry-{spec.geometry_types[0].lower()}",
        },
    }
    for prop in spec.properties:
        entry: dict[str, Any] = {"title": prop.title, **_JSON_TYPES[prop.type]}
        if prop.title_zh:
            entry["x-title-zh"] = prop.title_zh
        if prop.description:
            entry["description"] = prop.description
        if prop.choices:
            entry["enum"] = list(prop.choices)
        if prop.unit:
            entry["x-unit"] = prop.unit
        if prop.non_negative:
            entry["minimum"] = 0
        props[prop.name] = entry
    props[UPDATED_AT] = {
        "title": "Last changed",
        "type": "string",
        "format": "date-time",
    }
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": spec.title,
        "properties": props,
        "additionalProperties": False,
    }
