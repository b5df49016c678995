"""Layers of the water-quality domain (warnings, patrol tasks)."""

from __future__ import annotations

from layers.base import LayerSpec

WATER_LAYERS: tuple[LayerSpec, ...] = ()
