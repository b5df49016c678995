"""CQL2 filters (text and JSON) to parameterised SQLAlchemy expressions.

pygeofilter parses the filter into its AST; :class:`_ToSQL` walks that AST and
builds SQLAlchemy Core expressions in which every literal is a bound
parameter, coerced in Python to the type of the property it is compared with
(so a bad value is a 400 here, never a database error). Property names are
checked against the layer's queryables. Geometry literals are read in
``filter-crs`` (axis order included) and transformed to EPSG:4326 in Python
before they are bound.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from geoalchemy2 import Geometry
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pyproj import Transformer
from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    and_,
    bindparam,
    func,
    not_,
    or_,
    true,
)

from gis_server.errors import InvalidFilter
from gis_server.features.crs import CRS, DEFAULT_CRS
from gis_server.features.props import GEOMETRY_NAMES, Queryable, coerce_value
from layers import LayerSpec, table_for

#: ``filter-lang`` values understood.
FILTER_LANGS = ("cql2-text", "cql2-json")

_SPATIAL = {
    "INTERSECTS": func.ST_Intersects,
    "DISJOINT": func.ST_Disjoint,
    "CONTAINS": func.ST_Contains,
    "WITHIN": func.ST_Within,
    "TOUCHES": func.ST_Touches,
    "CROSSES": func.ST_Crosses,
    "OVERLAPS": func.ST_Overlaps,
    "EQUALS": func.ST_Equals,
}


def parse_filter(
    text: str,
    lang: str | None,
    spec: LayerSpec,
    queryables: dict[str, Queryable],
    filter_crs: CRS = DEFAULT_CRS,
) -> ColumnElement[bool]:
    """A CQL2 filter on ``spec`` as a SQLAlchemy condition.

    Parameters
    ----------
    text
        The filter, CQL2 text or CQL2 JSON.
    lang
        ``cql2-text`` (default) or ``cql2-json``.
    spec, queryables
        The layer and the names a filter may use.
    filter_crs
        CRS of geometry literals in the filter.

    Raises
    ------
    InvalidFilter
        Malformed filter, unknown property, unsupported operator or a value
        of the wrong type.
    """
    lang = lang or "cql2-text"
    if lang not in FILTER_LANGS:
        raise InvalidFilter(
            f"filter-lang {lang!r} is not supported; use one of {FILTER_LANGS}"
        )
    tree = _parse(text, lang)
    evaluator = _ToSQL(spec, queryables, filter_crs)
    try:
        result = evaluator.evaluate(tree)
    except InvalidFilter:
        raise
    except (
        TypeError,
        ValueError,
        AttributeError,
        KeyError,
        NotImplementedError,
    ) as exc:
        raise InvalidFilter(f"filter cannot be applied: {exc}") from exc
    if not isinstance(result, ColumnElement):
        raise InvalidFilter("filter is not a condition (true/false)")
    return result


def _parse(text: str, lang: str) -> ast.AstType:
    try:
        if lang == "cql2-json":
            from pygeofilter.parsers.cql2_json import parse

            return parse(_normalise_json(json.loads(text)))
        from pygeofilter.parsers.cql2_text import parse

        return parse(text)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidFilter(f"malformed {lang} filter: {message}") from exc


def _normalise_json(node: Any) -> Any:
    """Accept the CQL2 JSON ``between`` form ``[value, low, high]``.

    pygeofilter 0.4 reads ``between`` as ``[value, [low, high]]`` only.
    """
    if isinstance(node, list):
        return [_normalise_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _normalise_json(v) for k, v in node.items()}
    if node.get("op") == "between" and isinstance(node.get("args"), list):
        args = node["args"]
        if len(args) == 3:
            node["args"] = [args[0], [args[1], args[2]]]
    return node


@lru_cache(maxsize=16)
def _transformer(srid: int) -> Transformer:
    return Transformer.from_crs(srid, 4326, always_xy=True)


def geometry_to_wgs84(geometry: shapely.Geometry, crs: CRS) -> shapely.Geometry:
    """A geometry given in ``crs`` (its axis order) as lon/lat EPSG:4326.

    Examples
    --------
    >>> from gis_server.features.crs import parse_crs
    >>> geometry_to_wgs84(shapely.Point(23.1, 113.3), parse_crs("EPSG:4326")).wkt
    'POINT (113.3 23.1)'
    """
    if crs.lat_first:
        geometry = shapely.transform(geometry, lambda xy: xy[:, ::-1])
    if crs.srid != 4326:
        transformer = _transformer(crs.srid)

        def _project(xy: np.ndarray) -> np.ndarray:
            x, y = transformer.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        geometry = shapely.transform(geometry, _project)
    return geometry


class _Value:
    """A literal not yet bound: it takes the type of what it is compared with."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _ToSQL(Evaluator):
    def __init__(
        self, spec: LayerSpec, queryables: dict[str, Queryable], crs: CRS
    ) -> None:
        self.spec = spec
        self.queryables = queryables
        self.crs = crs
        self.geom = table_for(spec.id).c.geom

    # -- operands -----------------------------------------------------------
    @handle(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        if node.name in GEOMETRY_NAMES:
            return self.geom
        try:
            return self.queryables[node.name]
        except KeyError:
            known = ", ".join([*self.queryables, "geom"])
            raise InvalidFilter(
                f"unknown property {node.name!r} in filter (queryables: {known})"
            ) from None

    @handle(str, float, int, bool, dt.datetime, dt.date)
    def literal(self, node: Any) -> _Value:
        return _Value(node)

    @handle(type(None))
    def null_literal(self, node: None) -> _Value:
        return _Value(None)

    @handle(values.Interval)
    def interval(self, node: values.Interval, start: Any, end: Any) -> _Value:
        def _plain(v: Any) -> Any:
            v = getattr(v, "value", v)
            return None if v in ("..", None) else v

        return _Value((_plain(start), _plain(end)))

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> ColumnElement:
        return self._geometry_literal(shapely.geometry.shape(node.__geo_interface__))

    @handle(values.Envelope)
    def envelope(self, node: values.Envelope) -> ColumnElement:
        return self._geometry_literal(shapely.box(node.x1, node.y1, node.x2, node.y2))

    @handle(ast.Function)
    def function(self, node: ast.Function, *args: Any) -> Any:
        name = node.name.lower()
        if name == "lower" and len(args) == 1:  # CASEI
            if isinstance(args[0], _Value) and isinstance(args[0].value, str):
                return _Value(args[0].value.lower())
            return func.lower(self._column(args[0], "CASEI"))
        if name == "bbox" and len(args) == 4:
            box = [self._number(a) for a in args]
            return self._geometry_literal(shapely.box(*box))
        raise InvalidFilter(f"function {node.name!r} is not supported")

    @handle(ast.Arithmetic, subclasses=True)
    def arithmetic(self, node: ast.Arithmetic, lhs: Any, rhs: Any) -> ColumnElement:
        left, right = self._numeric(lhs), self._numeric(rhs)
        return {
            "+": lambda: left + right,
            "-": lambda: left - right,
            "*": lambda: left * right,
            "/": lambda: left / func.nullif(right, 0),
        }[node.op.value]()

    # -- predicates -------------------------------------------------------
    @handle(ast.Not)
    def not_(self, node: ast.Not, sub: ColumnElement) -> ColumnElement:
        return not_(sub)

    @handle(ast.And, ast.Or)
    def combination(self, node: Any, lhs: ColumnElement, rhs: ColumnElement) -> Any:
        return and_(lhs, rhs) if isinstance(node, ast.And) else or_(lhs, rhs)

    @handle(ast.Include)
    def include(self, node: ast.Include) -> ColumnElement:
        return not_(true()) if node.not_ else true()

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> ColumnElement:
        left, right = self._pair(lhs, rhs)
        return {
            "=": lambda: left == right,
            "<>": lambda: left != right,
            "<": lambda: left < right,
            "<=": lambda: left <= right,
            ">": lambda: left > right,
            ">=": lambda: left >= right,
        }[node.op.value]()

    @handle(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> Any:
        column, low_v = self._pair(lhs, low)
        _, high_v = self._pair(lhs, high)
        condition = column.between(low_v, high_v)
        return not_(condition) if node.not_ else condition

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> ColumnElement:
        column = self._column(lhs, "LIKE")
        pattern = node.pattern
        if not isinstance(pattern, str):
            raise InvalidFilter("LIKE needs a text pattern")
        condition = column.like(bindparam(None, pattern), escape="\\")
        return not_(condition) if node.not_ else condition

    @handle(ast.In)
    def in_(self, node: ast.In, lhs: Any, *options: Any) -> ColumnElement:
        if not options:
            raise InvalidFilter("IN needs at least one value")
        column = self._column(lhs, "IN")
        coerced = [self._pair(lhs, option)[1] for option in options]
        condition = column.in_(coerced)
        return not_(condition) if node.not_ else condition

    @handle(ast.IsNull)
    def is_null(self, node: ast.IsNull, lhs: Any) -> ColumnElement:
        column = self._column(lhs, "IS NULL")
        return column.is_not(None) if node.not_ else column.is_(None)

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node: Any, lhs: Any, rhs: Any) -> ColumnElement:
        return _SPATIAL[node.op.name](self._spatial(lhs), self._spatial(rhs))

    @handle(ast.BBox)
    def bbox(self, node: ast.BBox, lhs: Any) -> ColumnElement:
        if node.crs:
            from gis_server.features.crs import parse_crs

            crs = parse_crs(node.crs, "BBOX crs")
        else:
            crs = self.crs
        box = shapely.box(node.minx, node.miny, node.maxx, node.maxy)
        return func.ST_Intersects(self._spatial(lhs), self._geometry_literal(box, crs))

    @handle(ast.TemporalPredicate, subclasses=True)
    def temporal(self, node: Any, lhs: Any, rhs: Any) -> ColumnElement:
        column = self._column(lhs, node.op.value)
        if not isinstance(lhs, Queryable) or lhs.type not in ("date", "datetime"):
            raise InvalidFilter(f"{node.op.value} needs a date or date-time property")
        op = node.op.value
        value = rhs.value if isinstance(rhs, _Value) else None
        if isinstance(value, tuple):
            start, end = (
                None if v is None else coerce_value(lhs.name, lhs.type, v)
                for v in value
            )
            if op == "DURING":
                bounds = []
                if start is not None:
                    bounds.append(column > start)
                if end is not None:
                    bounds.append(column < end)
                return and_(*bounds)
            if op == "AFTER" and end is not None:
                return column > end
            if op == "BEFORE" and start is not None:
                return column < start
            if op == "DISJOINT":
                parts = []
                if start is not None:
                    parts.append(column < start)
                if end is not None:
                    parts.append(column > end)
                return or_(*parts)
        elif value is not None:
            instant = coerce_value(lhs.name, lhs.type, value)
            if op == "AFTER":
                return column > instant
            if op == "BEFORE":
                return column < instant
            if op in ("TEQUALS", "INTERSECTS"):
                return column == instant
            if op == "DISJOINT":
                return column != instant
        raise InvalidFilter(
            f"temporal operator {op} is supported on instants and intervals "
            "only as T_AFTER, T_BEFORE, T_EQUALS, T_DISJOINT and T_DURING"
        )

    @handle(ast.Relate)
    def relate(self, node: ast.Relate, lhs: Any, rhs: Any) -> ColumnElement:
        return func.ST_Relate(
            self._spatial(lhs), self._spatial(rhs), bindparam(None, node.pattern)
        )

    @handle(ast.SpatialDistancePredicate, subclasses=True)
    def distance(self, node: Any, lhs: Any, rhs: Any) -> ColumnElement:
        raise InvalidFilter(f"{node.op.value} is not supported")

    # -- helpers ------------------------------------------------------------
    def _geometry_literal(
        self, geometry: shapely.Geometry, crs: CRS | None = None
    ) -> ColumnElement:
        if geometry.is_empty:
            raise InvalidFilter("empty geometry in filter")
        if not geometry.is_valid:  # GEOS would fail in the database
            geometry = shapely.make_valid(geometry)
        wgs84 = geometry_to_wgs84(geometry, crs or self.crs)
        return func.ST_GeomFromWKB(
            bindparam(None, shapely.to_wkb(wgs84), type_=LargeBinary),
            4326,
            type_=Geometry(srid=4326),
        )

    def _spatial(self, operand: Any) -> Any:
        if isinstance(operand, Queryable) or isinstance(operand, _Value):
            raise InvalidFilter(
                "spatial operators compare the geometry with a geometry"
            )
        return operand

    def _column(self, operand: Any, where: str) -> Any:
        if isinstance(operand, Queryable):
            return operand.column
        if isinstance(operand, _Value):
            raise InvalidFilter(f"{where} needs a property on its left side")
        return operand

    def _number(self, operand: Any) -> float:
        value = getattr(operand, "value", operand)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilter(f"{value!r} is not a number")
        return float(value)

    def _numeric(self, operand: Any) -> Any:
        if isinstance(operand, Queryable):
            if operand.type not in ("int", "float"):
                raise InvalidFilter(f"property {operand.name!r} is not a number")
            return operand.column
        if isinstance(operand, _Value):
            return bindparam(None, self._number(operand))
        return operand

    def _pair(self, lhs: Any, rhs: Any) -> tuple[Any, Any]:
        """Both sides of a comparison, literals coerced to the other side's type."""
        if isinstance(lhs, _Value) and isinstance(rhs, _Value):
            raise InvalidFilter("a comparison needs at least one property")
        if isinstance(lhs, _Value):
            right, left = self._pair(rhs, lhs)
            return left, right
        left = lhs.column if isinstance(lhs, Queryable) else lhs
        if isinstance(rhs, _Value):
            if isinstance(lhs, Queryable):
                value = coerce_value(lhs.name, lhs.type, rhs.value)
            else:
                value = rhs.value
            if isinstance(value, tuple):
                raise InvalidFilter("an interval cannot be compared with = < >")
            type_ = lhs.column.type if isinstance(lhs, Queryable) else None
            return left, bindparam(None, value, type_=type_)
        right = rhs.column if isinstance(rhs, Queryable) else rhs
        return left, right
