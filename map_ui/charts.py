"""Inline SVG sparklines for popups (offline: no chart library)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape


def sparkline(
    times: Sequence[dt.datetime],
    values: Sequence[float],
    *,
    width: int = 160,
    height: int = 32,
    color: str = "#1f78b4",
    title: str = "",
) -> str:
    """An SVG polyline of ``values`` over ``times`` (oldest first).

    The x axis spans the first to the last time; the y axis the range of the
    values (a flat line in the middle when they are all equal).

    Examples
    --------
    >>> t0 = dt.datetime(2026, 1, 1)
    >>> svg = sparkline([t0, t0 + dt.timedelta(days=1)], [1.0, 3.0], width=10,
    ...                 height=10)
    >>> 'points="1.0,9.0 9.0,1.0"' in svg
    True
    """
    if not values:
        return ""
    pad = 1.0
    t_first = times[0].timestamp()
    span_t = max(times[-1].timestamp() - t_first, 1.0)
    lo, hi = min(values), max(values)
    span_v = hi - lo
    points = []
    for when, value in zip(times, values, strict=True):
        x = pad + (width - 2 * pad) * (when.timestamp() - t_first) / span_t
        if span_v > 0:
            y = height - pad - (height - 2 * pad) * (value - lo) / span_v
        else:
            y = height / 2
        points.append(f"{x:.1f},{y:.1f}")
    return (
        f'<svg class="gis-sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<polyline fill="none" stroke="{escape(color)}" stroke-width="1.5" '
        f'points="{" ".join(points)}"/></svg>'
    )
