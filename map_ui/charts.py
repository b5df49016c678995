"""Charts of the map pages: inline SVG sparklines for popups (no library) and
PNG charts drawn with matplotlib for rankings and trends."""

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


# -- PNG charts (matplotlib, Agg) --------------------------------------------
#
# The supervision page shows rankings and trends as <img> of PNG charts drawn
# on the server: the pages work offline and in any browser, and the same PNG
# goes into a report. matplotlib is imported lazily (it costs ~0.3 s) and runs
# on the Agg backend with no display. Chinese labels need a CJK font; when
# none is installed, :func:`chart_lang` tells the caller to label in English
# (``apt-get install fonts-noto-cjk`` or ``fonts-wqy-microhei`` fixes it).

#: Font families tried in order for CJK labels.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
)
#: File names (lower case) of CJK fonts the font cache may not have indexed.
_CJK_FILE_HINTS = ("notosanscjk", "notosanssc", "sourcehansans", "wqy",
                   "droidsansfallback")
CHART_DPI = 100
CHART_SIZE = (6.4, 3.6)  # inches: 640 x 360 px
#: Colours of series and slices (ColorBrewer Set2, readable in print).
PALETTE = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f",
           "#e5c494", "#b3b3b3")

_FONT: list[str | None] = []  # resolved once: [family or None]


def cjk_font() -> str | None:
    """The family of an installed CJK font matplotlib can use, or None.

    Looks in matplotlib's font list first, then registers a CJK font file
    found on the system that the font cache did not index (``.ttc`` files).
    """
    if _FONT:
        return _FONT[0]
    from matplotlib import font_manager

    found = None
    known = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            found = family
            break
    if found is None:
        for path in sorted(font_manager.findSystemFonts()):
            name = path.rsplit("/", 1)[-1].lower().replace("-", "").replace("_", "")
            if any(hint in name for hint in _CJK_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError):  # unreadable: try the next one
                    continue
                names = {f.name for f in font_manager.fontManager.ttflist}
                found = next((f for f in CJK_FAMILIES if f in names), None)
                if found:
                    break
    if found is None:
        import logging

        logging.getLogger("gis_server.maps").warning(
            "no CJK font installed: charts are labelled in English",
            extra={"families": CJK_FAMILIES},
        )
    _FONT.append(found)
    return found


def chart_lang(lang: str) -> str:
    """The language charts can be labelled in: ``lang``, or ``en`` without CJK."""
    return lang if lang != "zh" or cjk_font() else "en"


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    family = cjk_font()
    fig = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
    fonts = [family, "DejaVu Sans"] if family else ["DejaVu Sans"]
    ax = fig.add_subplot()
    fig._gis_fonts = fonts  # type: ignore[attr-defined]
    ax.set_title(title, fontfamily=fonts, fontsize=12)
    return fig, ax


def _style_text(fig) -> None:
    fonts = fig._gis_fonts
    for ax in fig.axes:
        for label in [*ax.get_xticklabels(), *ax.get_yticklabels(),
                      ax.xaxis.label, ax.yaxis.label]:
            label.set_fontfamily(fonts)
        legend = ax.get_legend()
        if legend is not None:
            for label in legend.get_texts():
                label.set_fontfamily(fonts)


def _png(fig) -> bytes:
    """The figure as PNG bytes; no timestamp or version: same data, same bytes."""
    import io

    _style_text(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CHART_DPI,
                metadata={"Software": None})
    return buf.getvalue()


def _no_data(fig, ax, empty_text: str | None) -> bytes:
    text = empty_text or ("暂无数据" if cjk_font() else "no data")
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14,
            color="#888888", transform=ax.transAxes, fontfamily=fig._gis_fonts)
    return _png(fig)


def bar_chart(
    rows: Sequence[dict],
    label: str,
    values: str | Sequence[str],
    title: str,
    *,
    series_titles: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    empty_text: str | None = None,
    stacked: bool = False,
) -> bytes:
    """Horizontal bars of ``values`` (one key, or several side by side) per row.

    ``rows`` are dicts (already ranked: the first row is drawn on top), ``label``
    the key of each bar's label. With ``stacked`` several values are stacked
    in one bar per row (each segment labelled inside). A chart of no rows says
    "no data".

    Examples
    --------
    >>> png = bar_chart([{"d": "A", "n": 3}, {"d": "B", "n": 1}], "d", "n", "t")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    >>> rows = [{"d": "A", "x": 1, "y": 2}]
    >>> bar_chart(rows, "d", ["x", "y"], "t", stacked=True) != bar_chart(
    ...     rows, "d", ["x", "y"], "t")
    True
    """
    keys = [values] if isinstance(values, str) else list(values)
    fig, ax = _figure(title)
    if not rows:
        return _no_data(fig, ax, empty_text)
    labels = [str(r.get(label) if r.get(label) is not None else "—") for r in rows]
    n, k = len(rows), len(keys)
    height = 0.8 if stacked else 0.8 / k
    left = [0.0] * n
    for i, key in enumerate(keys):
        if stacked:
            ys = list(range(n))
        else:
            ys = [j + (i - (k - 1) / 2) * height for j in range(n)]
        xs = [float(r.get(key) or 0) for r in rows]
        color = (colors or {}).get(key, PALETTE[i % len(PALETTE)])
        bars = ax.barh(ys, xs, height=height, color=color,
                       left=left if stacked else None,
                       label=(series_titles or {}).get(key, key))
        ax.bar_label(bars, labels=[f"{x:g}" if x else "" for x in xs],
                     fontsize=8, padding=2,
                     label_type="center" if stacked else "edge")
        if stacked:
            left = [a + b for a, b in zip(left, xs, strict=True)]
    ax.set_yticks(range(n), labels)
    ax.invert_yaxis()
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.12)
    if k > 1:
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _png(fig)


def line_chart(
    series: dict[str, Sequence[tuple]],
    title: str,
    thresholds: dict[str, float] | None = None,
    *,
    y_label: str = "",
    empty_text: str | None = None,
) -> bytes:
    """Lines of ``(x, y)`` points per series, with dashed threshold lines.

    ``x`` may be numbers, dates or date-times (sorted here); ``thresholds``
    maps a label ("warning 30 mm") to a y value. A chart with no points says
    "no data" (the thresholds alone are not a trend).

    Examples
    --------
    >>> png = line_chart({"s": [(1, 2.0), (2, 3.0)]}, "t", {"limit": 2.5})
    >>> len(png) < 100_000
    True
    """
    fig, ax = _figure(title)
    points = {name: sorted(p for p in pts if p[1] is not None)
              for name, pts in series.items()}
    if not any(points.values()):
        return _no_data(fig, ax, empty_text)
    for i, (name, pts) in enumerate(points.items()):
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5,
                color=PALETTE[i % len(PALETTE)], label=name)
    for j, (name, value) in enumerate((thresholds or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1,
                   color=("#d73027", "#fc8d59", "#4575b4")[j % 3], label=name)
    if y_label:
        ax.set_ylabel(y_label)
    ax.grid(True, linewidth=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return _png(fig)


def pie_chart(
    counts: dict[str, float],
    title: str,
    *,
    colors: dict[str, str] | None = None,
    empty_text: str | None = None,
) -> bytes:
    """A pie of ``counts`` (label -> count; zero slices left out).

    Examples
    --------
    >>> pie_chart({}, "t")[:4] == b"\\x89PNG"
    True
    """
    fig, ax = _figure(title)
    shown = {k: float(v) for k, v in counts.items() if v and v > 0}
    if not shown:
        return _no_data(fig, ax, empty_text)
    palette = [(colors or {}).get(k, PALETTE[i % len(PALETTE)])
               for i, k in enumerate(shown)]
    total = sum(shown.values())
    _, texts, autotexts = ax.pie(
        list(shown.values()), labels=list(shown), colors=palette, startangle=90,
        counterclock=False, autopct=lambda p: f"{round(p * total / 100):g}",
        wedgeprops={"linewidth": 1, "edgecolor": "white"}, textprops={"fontsize": 9},
    )
    for label in [*texts, *autotexts]:
        label.set_fontfamily(fig._gis_fonts)
    ax.set_aspect("equal")
    return _png(fig)


def table_png(
    rows: Sequence[dict],
    columns: Sequence[str | tuple[str, str]],
    title: str,
    *,
    max_rows: int = 20,
    empty_text: str | None = None,
) -> bytes:
    """A table of ``rows`` as an image (for reports); ``columns`` are keys or
    (key, header) pairs. Rows past ``max_rows`` are left out and counted."""
    cols = [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]
    fig, ax = _figure(title)
    ax.set_axis_off()
    if not rows:
        return _no_data(fig, ax, empty_text)
    shown = list(rows[:max_rows])
    cells = [["" if r.get(k) is None else str(r.get(k)) for k, _ in cols]
             for r in shown]
    if len(rows) > max_rows:
        cells.append([f"… +{len(rows) - max_rows}"] + [""] * (len(cols) - 1))
    fig.set_size_inches(CHART_SIZE[0], min(0.7 + 0.25 * (len(cells) + 1), 9.0))
    table = ax.table(cellText=cells, colLabels=[h for _, h in cols],
                     bbox=(0.0, 0.0, 1.0, 1.0), cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.get_text().set_fontfamily(fig._gis_fonts)
        cell.set_linewidth(0.3)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#eeeeee")
    return _png(fig)
