"""Declarations of the concrete supervision domain (feeds and layers)."""

from __future__ import annotations

from layers.base import LayerSpec

#: Map layers this domain adds (none yet).
LAYERS: tuple[LayerSpec, ...] = ()
