"""The caller of the current request.

The authentication middleware sets :data:`CURRENT` for the duration of a
request; the database layer reads it when a transaction begins
(``gis_server.auth.dbsecurity``), so every query a request makes -- items,
tiles, exports, map pages -- runs under the caller's scope without the route
passing it along. Outside a request (the CLI, background jobs) it is unset
and queries run as the server itself, unless the CLI's ``--as`` sets it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An account (or the anonymous caller) with its role and scope attributes."""

    username: str
    role: str | None  # None: anonymous
    district: str | None = None  # housing officers: the district they serve
    chief_id: str | None = None  # river chiefs: their chief id
    #: how the caller proved who they are: "token", "key", "cli", "anonymous"
    via: str = "anonymous"
    #: anonymous callers: the layers anyone may read (``GIS_AUTH_ANONYMOUS_*``,
    #: runtime settings the database is told per transaction); ``("*",)``: all
    anonymous_layers: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.role is None

    def attribute(self, role: str) -> str | None:
        """The value a scoped layer's column is compared with for ``role``."""
        return {"housing_officer": self.district, "river_chief": self.chief_id}.get(
            role
        )


ANONYMOUS = Principal(username="anonymous", role=None)

#: The caller of the request being served (None outside requests).
CURRENT: ContextVar[Principal | None] = ContextVar("gis_principal", default=None)
