"""The one place deciding what a caller may read, edit and do.

Layers declare their access (``layers.base.Access``); this module turns a
:class:`~gis_server.auth.principal.Principal` and a layer into a
:class:`Scope` -- every feature, the features whose scope column equals the
caller's attribute, or none -- and answers the questions the routes ask
(``require_read``, ``require_write``, ``require``). The database applies the
same scopes (``dbsecurity``), so a route that forgot to ask still cannot
return a row outside the caller's scope.

A layer outside the caller's scope is *not found* (404), exactly like a layer
that does not exist, so a scoped caller cannot learn what exists; a caller
without credentials is asked to sign in (401) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gis_server.auth.principal import Principal
from gis_server.auth.settings import AuthSettings
from gis_server.errors import Forbidden, NotFound, Unauthorized
from layers import LayerSpec, all_layers

#: Actions that are not about one layer's features, and the roles doing them.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "users.manage": ("admin",),
    "audit.read": ("admin",),
    #: the rule settings with their sources (GET /admin/settings)
    "settings.read": ("admin",),
    #: override a rule setting at run time, or remove the override
    "settings.manage": ("admin",),
    #: the steps of a supervision warning's loop, one permission each, so no
    #: one role walks a warning from raised to closed (also scoped by the
    #: layer; the loop adds the four-eyes rule, GIS_LOOP_FOUR_EYES)
    #: dispatch: the supervisor issues the rectification notice
    "warnings.dispatch": ("admin", "housing_officer"),
    #: rectify: the responsible side replies -- a river chief for their own
    #: warnings, a housing officer recording a party's reply
    "warnings.rectify": ("admin", "housing_officer", "river_chief"),
    #: verify: the supervisor closes (销号) or sends back; never a river chief,
    #: who is the responsible party of the warnings they see
    "warnings.verify": ("admin", "housing_officer"),
    #: escalate the overdue warnings now (the CLI; evaluations do it too)
    "warnings.escalate": ("admin", "housing_officer"),
    #: store an evidence photo (an inspection's, a reply's)
    "evidence.upload": ("admin", "housing_officer", "river_chief"),
    "patrols.record": ("admin", "river_chief"),
    #: the city-wide river summary (counts, not features)
    "rivers.summary": ("admin", "analyst", "river_chief", "housing_officer"),
}


@dataclass(frozen=True)
class Scope:
    """Which features of a layer a caller reaches."""

    kind: Literal["all", "rows", "none"]
    column: str | None = None
    value: str | None = None

    @property
    def key(self) -> str:
        """A short text naming the scope (cache keys, ETags, logs)."""
        if self.kind == "rows":
            return f"{self.column}={self.value}"
        return self.kind


ALL = Scope("all")
NONE = Scope("none")


def read_scope(
    principal: Principal, spec: LayerSpec, settings: AuthSettings | None = None
) -> Scope:
    """The features of ``spec`` that ``principal`` may read."""
    role = principal.role
    if role == "admin":
        return ALL
    if role is None:
        cfg = settings or AuthSettings()
        if cfg.anonymous == "read" or spec.id in cfg.anonymous_layers:
            return ALL
        return NONE
    access = spec.access
    if role in access.read or role in access.write:
        return ALL
    for scoped_role, column in access.scoped:
        if scoped_role == role:
            value = principal.attribute(role)
            return Scope("rows", column, value) if value else NONE
    return NONE


def write_scope(principal: Principal, spec: LayerSpec) -> Scope:
    """The features of ``spec`` that ``principal`` may create, edit, delete."""
    role = principal.role
    if role == "admin":
        return ALL
    if role is None:
        return NONE
    access = spec.access
    if role in access.write:
        return ALL
    if role in access.scoped_write:
        return read_scope(principal, spec)
    return NONE


def anonymous_principal(settings: AuthSettings | None = None) -> Principal:
    """The caller without credentials, carrying the layers anyone may read
    (runtime settings; the database is told them in every transaction)."""
    cfg = settings or AuthSettings()
    layers = ("*",) if cfg.anonymous == "read" else tuple(cfg.anonymous_layers)
    return Principal(username="anonymous", role=None, anonymous_layers=layers)


def readable_layers(
    principal: Principal, settings: AuthSettings | None = None
) -> list[LayerSpec]:
    """The layers a caller sees listed."""
    return [
        s for s in all_layers() if read_scope(principal, s, settings).kind != "none"
    ]


def not_found(layer_id: str) -> NotFound:
    """The 404 for a layer that does not exist *or* is outside the scope."""
    return NotFound(f"no collection {layer_id!r}")


def require_read(
    principal: Principal, spec: LayerSpec, settings: AuthSettings | None = None
) -> Scope:
    """The read scope, or 401 (anonymous) / 404 (signed in, out of scope)."""
    scope = read_scope(principal, spec, settings)
    if scope.kind == "none":
        if principal.anonymous:
            raise Unauthorized("sign in to read this collection")
        raise not_found(spec.id)
    return scope


def require_write(
    principal: Principal, spec: LayerSpec, settings: AuthSettings | None = None
) -> Scope:
    """The write scope; 401 / 404 when the layer is not even readable, 403 when
    it is readable but not editable by this caller."""
    require_read(principal, spec, settings)
    scope = write_scope(principal, spec)
    if scope.kind == "none":
        raise Forbidden(f"your role may not edit {spec.id}")
    return scope


def may(principal: Principal, permission: str) -> bool:
    return principal.role in PERMISSIONS[permission]


def require(principal: Principal, permission: str) -> None:
    """401 for anonymous callers, 403 for roles without ``permission``."""
    if may(principal, permission):
        return
    if principal.anonymous:
        raise Unauthorized("sign in first")
    raise Forbidden(f"your role ({principal.role}) may not do this ({permission})")
