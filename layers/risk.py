"""Layers of the risk domain (risk zones, risk grid and what they need)."""

from __future__ import annotations

from layers.base import LayerSpec

RISK_LAYERS: tuple[LayerSpec, ...] = ()
