"""Source properties -> layer properties: matching names and coercing values.

A source field maps to a layer property when the user says so
(``--field height=height_m``), or when its name matches the property's name or
one of its aliases (case-insensitive, ignoring ``-``, ``_``, ``:`` and
spaces). Fields that map to nothing are kept in the ``extra`` JSON column,
never dropped. A value that cannot be coerced to the property's type is kept
in ``extra`` under its source name, the property is left empty, and the
report says so.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gis_server.errors import InvalidParameter
from layers.base import LayerSpec, Prop


def normalise_name(name: str) -> str:
    """Field-name key for matching: ``"Name:EN"`` -> ``"nameen"``."""
    return re.sub(r"[\s_\-:.]+", "", name).casefold()


def parse_field_options(options: Sequence[str]) -> dict[str, str]:
    """``["height=height_m"]`` -> ``{"height": "height_m"}``."""
    mapping: dict[str, str] = {}
    for option in options:
        source, sep, target = option.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidParameter(f"--field takes SOURCE=PROPERTY, got {option!r}")
        mapping[source.strip()] = target.strip()
    return mapping


@dataclass
class FieldMapping:
    """Which source field feeds which layer property."""

    to_prop: dict[str, str]  # source field -> property name
    unmapped: list[str]  # source fields kept in ``extra``

    @property
    def used_props(self) -> set[str]:
        return set(self.to_prop.values())


def map_fields(
    spec: LayerSpec,
    source_fields: Sequence[str],
    explicit: dict[str, str] | None = None,
    ignore: Sequence[str] = (),
) -> FieldMapping:
    """Match source fields to the layer's properties.

    Explicit mappings win; then a field whose name is the property's name;
    then aliases in the order the property lists them.

    Examples
    --------
    >>> from layers import get_layer
    >>> m = map_fields(get_layer("buildings"), ["height", "name:en", "Safety-Grade"])
    >>> m.to_prop, m.unmapped
    ({'height': 'height_m', 'Safety-Grade': 'safety_grade'}, ['name:en'])
    """
    props = spec.prop_by_name
    explicit = dict(explicit or {})
    for source, target in explicit.items():
        if target not in props:
            known = ", ".join(props)
            raise InvalidParameter(
                f"--field {source}={target}: layer {spec.id} has no property "
                f"{target!r} (known: {known})"
            )
        if source not in source_fields:
            raise InvalidParameter(
                f"--field {source}={target}: the source has no field {source!r}"
            )
    to_prop: dict[str, str] = dict(explicit)
    taken = set(to_prop.values())
    candidates = [f for f in source_fields if f not in to_prop and f not in ignore]
    by_key: dict[str, str] = {}
    for field_name in candidates:
        by_key.setdefault(normalise_name(field_name), field_name)
    for prop in spec.properties:
        if prop.name in taken:
            continue
        for alias in (prop.name, *prop.aliases):
            field_name = by_key.get(normalise_name(alias))
            if field_name is not None and field_name not in to_prop:
                to_prop[field_name] = prop.name
                taken.add(prop.name)
                break
    unmapped = [f for f in candidates if f not in to_prop]
    return FieldMapping(to_prop, unmapped)


class CoercionError(ValueError):
    pass


_TRUE = {"1", "true", "t", "yes", "y", "是", "有"}
_FALSE = {"0", "false", "f", "no", "n", "否", "无"}
_NUMBER = re.compile(
    r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:m|米|m2|㎡|层|f)?\s*$", re.IGNORECASE
)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def coerce(value: Any, prop: Prop, tz: dt.tzinfo = dt.UTC) -> Any:
    """One source value as the property's Python type; raises CoercionError.

    A date-time without a zone is taken to be in ``tz``.

    Examples
    --------
    >>> from layers import get_layer
    >>> p = get_layer("buildings").prop_by_name
    >>> coerce("45 m", p["height_m"]), coerce("d", p["safety_grade"])
    (45.0, 'D')
    """
    if _is_null(value):
        return None
    kind = prop.type
    try:
        if kind == "text":
            out: Any = value if isinstance(value, str) else _text(value)
            out = out.strip()
            if prop.choices:
                match = [c for c in prop.choices if c.casefold() == out.casefold()]
                if not match:
                    raise CoercionError(f"not one of {'/'.join(prop.choices)}")
                out = match[0]
        elif kind in ("int", "float"):
            out = _number(value)
            if kind == "int":
                if out != int(out):
                    raise CoercionError("not a whole number")
                out = int(out)
            if prop.non_negative and out < 0:
                raise CoercionError("negative")
        elif kind == "bool":
            out = _boolean(value)
        elif kind == "date":
            out = _date(value)
        elif kind == "datetime":
            out = _datetime(value, tz)
        elif kind == "json":
            out = value
        else:  # pragma: no cover - declarations are checked at import
            raise CoercionError(f"unknown type {kind}")
    except CoercionError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise CoercionError(str(exc)) from exc
    return out


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (np.integer, np.floating)):
        return _text(value.item())
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise CoercionError("a boolean is not a number")
    if isinstance(value, (int, float, np.integer, np.floating)):
        out = float(value)
    else:
        match = _NUMBER.match(str(value))
        if not match:
            raise CoercionError("not a number")
        out = float(match.group(1))
    if not math.isfinite(out):
        raise CoercionError("not a finite number")
    return out


def _boolean(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    key = str(value).strip().casefold()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise CoercionError("not a yes/no value")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").item()
    text = str(value).strip().replace("/", "-").replace(".", "-")
    return dt.date.fromisoformat(text[:10])


def _datetime(value: Any, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    else:
        out = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if out.tzinfo is None:
        out = out.replace(tzinfo=tz)
    return out


def jsonable(value: Any) -> Any:
    """A source value as something ``json.dumps`` accepts (for ``extra``)."""
    if _is_null(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    return value
