"""The ``datetime`` parameter: instants and intervals as SQL conditions.

Values follow OGC API - Features Part 1: an instant (``2024-05-01`` or
``2024-05-01T08:00:00Z``), a closed interval ``start/end`` or a half-bounded
one with ``..`` (or an empty side). Times without an offset are taken as UTC
(RFC 3339 requires an offset; being lenient is kinder than a 400). A date
without a time means the whole day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_

from gis_server.errors import InvalidParameter

Moment = dt.date | dt.datetime


@dataclass(frozen=True)
class TimeInterval:
    """A parsed ``datetime`` value; ``None`` bounds are open."""

    start: Moment | None
    end: Moment | None
    instant: bool = False


def parse_datetime(value: str) -> TimeInterval:
    """Parse an OGC ``datetime`` parameter.

    Examples
    --------
    >>> parse_datetime("2024-05-01")
    TimeInterval(start=datetime.date(2024, 5, 1), end=datetime.date(2024, 5, 1), instant=True)
    >>> parse_datetime("../2024-05-01T00:00:00Z").start is None
    True
    """  # noqa: E501
    text = value.strip()
    if not text:
        raise InvalidParameter("datetime is empty")
    if "/" not in text:
        moment = _parse_moment(text)
        return TimeInterval(moment, moment, instant=True)
    parts = text.split("/")
    if len(parts) != 2:
        raise InvalidParameter(f"datetime {value!r} has more than one '/'")
    start = None if parts[0] in ("", "..") else _parse_moment(parts[0])
    end = None if parts[1] in ("", "..") else _parse_moment(parts[1])
    if start is None and end is None:
        raise InvalidParameter("datetime '../..' does not bound anything")
    if start is not None and end is not None and _lower(start) > _lower(end):
        raise InvalidParameter(f"datetime {value!r} ends before it starts")
    return TimeInterval(start, end)


def _parse_moment(text: str) -> Moment:
    try:
        if "T" in text or "t" in text or " " in text:
            moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"datetime {text!r} is not an RFC 3339 date or date-time"
        ) from None


def _lower(moment: Moment) -> dt.datetime:
    """The first instant of a moment (midnight UTC for a date)."""
    if isinstance(moment, dt.datetime):
        return moment
    return dt.datetime.combine(moment, dt.time(), dt.UTC)


def _upper_exclusive(moment: Moment) -> dt.datetime | None:
    """The first instant after a date; None for a date-time (inclusive)."""
    if isinstance(moment, dt.datetime):
        return None
    return dt.datetime.combine(moment + dt.timedelta(days=1), dt.time(), dt.UTC)


def interval_condition(
    column: ColumnElement, column_type: str, interval: TimeInterval
) -> ColumnElement[bool]:
    """The SQL condition ``column`` lies in ``interval`` (bounds inclusive).

    ``column_type`` is ``"date"`` or ``"datetime"``; bounds are converted to
    the column's type in Python so the column's index stays usable.
    """
    conditions: list[ColumnElement[bool]] = []
    if column_type == "date":
        if interval.start is not None:
            start = interval.start
            if isinstance(start, dt.datetime):
                # the first whole day at or after the instant
                day = start.astimezone(dt.UTC).date()
                start = day if start == _lower(day) else day + dt.timedelta(days=1)
            conditions.append(column >= start)
        if interval.end is not None:
            end = interval.end
            if isinstance(end, dt.datetime):
                end = end.astimezone(dt.UTC).date()
            conditions.append(column <= end)
    else:
        if interval.start is not None:
            conditions.append(column >= _lower(interval.start))
        if interval.end is not None:
            after = _upper_exclusive(interval.end)
            if after is None:
                conditions.append(column <= interval.end)
            else:
                conditions.append(column < after)
    return and_(*conditions)
