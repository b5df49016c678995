"""HTML pages (``f=html``) rendered from the same documents the JSON carries."""

from __future__ import annotations

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
        {"doc": document, "title": title, **context},
        headers=headers,
    )
