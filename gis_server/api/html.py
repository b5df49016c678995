"""HTML pages (``f=html``) rendered from the same documents the JSON carries."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(
    directory=Path(__file__).resolve().parent.parent / "templates"
)
TEMPLATES.env.filters["tojson_pretty"] = lambda value: orjson.dumps(
    value, option=orjson.OPT_INDENT_2
).decode()


@lru_cache(maxsize=1)
def _wgs84_basemap() -> dict[str, str] | None:
    """The map pages' basemap, when it is in WGS84 (these pages are not shifted)."""
    from map_ui.settings import MapSettings

    config = MapSettings().basemap_config()
    if config is None or config.get("datum", "wgs84") != "wgs84":
        return None
    return config


def render_html(
    request: Request,
    template: str,
    document: dict[str, Any],
    *,
    title: str,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the response document as ``doc``."""
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"doc": document, "title": title, "basemap": _wgs84_basemap(), **context},
        headers=headers,
    )
