"""Logging like a server: named loggers, structured fields, quiet libraries.

Fields passed with ``extra={...}`` are printed as ``key=value`` after the
message, or as JSON lines with ``GIS_LOG_JSON=true``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

#: LogRecord attributes that are not structured fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}
_NOISY = (
    "uvicorn.access",
    "sqlalchemy.engine",
    "alembic.runtime.migration",
    "pyogrio",
    "rasterio",
    "fiona",
    "matplotlib",
    "PIL",
)


def _fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = _fields(record)
        if fields:
            base += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return base


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Set up the ``gis_server`` logger tree once (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("gis_server")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


_requests = logging.getLogger("gis_server.requests")


def log_request(
    scope: dict[str, Any], status: int, start: float, **fields: Any
) -> None:
    """The one line per HTTP request: method, path, status, duration, layer,
    and who asked (the account the sign-in middleware resolved)."""
    principal = scope.get("state", {}).get("principal")
    if principal is not None and "user" not in fields:
        fields["user"] = principal.username
    _requests.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - start) * 1000, 2),
            **fields,
        },
    )
