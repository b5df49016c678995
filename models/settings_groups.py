"""The settings groups an administrator may change at run time.

Every rule setting class derives from
:class:`gis_server.overrides.OverridableSettings` and so registers its group
when its module is imported; :func:`load_groups` imports them all (every
supervision domain, the loop, the water and risk models) for the lists of
``GET /admin/settings`` and ``gis-server settings``.
"""

from __future__ import annotations

import importlib

from gis_server.overrides import GROUPS, OverridableSettings

#: modules declaring a group besides the supervision domains
MODULES: tuple[str, ...] = (
    "models.supervision.settings",  # loop
    "models.water.settings",  # water
    "models.risk.settings",  # risk
)


def load_groups() -> dict[str, type[OverridableSettings]]:
    """Every overridable group by name (importing the modules declaring them)."""
    from models.supervision.engine import load_domains

    load_domains()  # rules_<domain>
    for module in MODULES:
        importlib.import_module(module)
    return dict(sorted(GROUPS.items()))
