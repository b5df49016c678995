"""Domain errors. Code below the API raises these; the API maps them to HTTP.

Each error carries an OGC-style ``code`` and a human ``description`` that is
safe to show to a client (never a database error text).
"""

from __future__ import annotations


class GisServerError(Exception):
    """Base of every error this server raises on purpose."""

    code = "ServerError"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class NotFound(GisServerError):
    code = "NotFound"


class LayerNotFound(NotFound):
    code = "NotFound"


class FeatureNotFound(NotFound):
    code = "NotFound"


class TileNotFound(NotFound):
    """A tile outside the tile matrix set or the layer's zoom range."""

    code = "NotFound"


class InvalidParameter(GisServerError):
    """A request or command argument is malformed or out of range."""

    code = "InvalidParameterValue"


class InvalidBBox(InvalidParameter):
    pass


class InvalidFilter(InvalidParameter):
    pass


class UnsupportedCRS(InvalidParameter):
    pass


class InvalidGeometry(InvalidParameter):
    pass


class Unauthorized(GisServerError):
    """No valid credentials: sign in, or send an API key (HTTP 401)."""

    code = "Unauthorized"


class Forbidden(GisServerError):
    """Signed in, the resource is visible, but this role may not do this (403)."""

    code = "Forbidden"


class Conflict(GisServerError):
    """The request conflicts with the current state (a name taken; HTTP 409)."""

    code = "Conflict"


class PayloadTooLarge(GisServerError):
    """A request body, or the number of features in it, exceeds a limit."""

    code = "PayloadTooLarge"


class TooManyRequests(GisServerError):
    """A client is over a request or login budget; retry after ``retry_after`` s."""

    code = "TooManyRequests"

    def __init__(self, description: str, retry_after: int = 1) -> None:
        super().__init__(description)
        #: whole seconds until a retry can succeed (>= 1)
        self.retry_after = max(1, int(retry_after))


class IllegalTransition(GisServerError):
    """A warning cannot take this step from its current state (HTTP 409)."""

    code = "InvalidTransition"


class IngestError(GisServerError):
    """A file cannot be ingested at all (unreadable, unknown format)."""

    code = "IngestError"


class StrictIngestFailed(IngestError):
    """``--strict`` and at least one row was rejected: nothing was committed."""

    #: the ingest report listing the rejected rows
    report: object = None

    def with_report(self, report: object) -> StrictIngestFailed:
        self.report = report
        return self


class DatabaseUnavailable(GisServerError):
    """The database cannot be reached; retry later."""

    code = "ServiceUnavailable"


class EmbeddedClusterError(GisServerError):
    """The embedded PostgreSQL cluster cannot be created or started."""

    code = "EmbeddedClusterError"
