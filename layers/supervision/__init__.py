"""Declarations of the supervision systems: record feeds and their map layers.

One module per domain; importing this package registers every feed
(:func:`layers.feeds.register_feed`) so that ``layers.tables`` derives their
tables.
"""

from __future__ import annotations

from layers.supervision import (
    buildings,
    concrete,
    fund,
    inspections,
    sites,
    warnings,
)

SUPERVISION_LAYERS = (
    *warnings.LAYERS,
    *buildings.LAYERS,
    *concrete.LAYERS,
    *sites.LAYERS,
    *fund.LAYERS,
    *inspections.LAYERS,
)
