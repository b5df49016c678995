"""Layer declarations: what the server keeps, one declaration per layer."""

from __future__ import annotations

from layers.base import ROLES, Access, LayerSpec, Prop, Style
from layers.catalog import LAYERS
from layers.tables import metadata, table_for

__all__ = [
    "LAYERS",
    "ROLES",
    "Access",
    "LayerSpec",
    "Prop",
    "Style",
    "UnknownLayer",
    "all_layers",
    "get_layer",
    "metadata",
    "table_for",
]

_BY_ID: dict[str, LayerSpec] = {spec.id: spec for spec in LAYERS}
if len(_BY_ID) != len(LAYERS):
    raise RuntimeError("two layers share a collection id")


class UnknownLayer(KeyError):
    """No layer has this collection id."""

    def __init__(self, layer_id: str) -> None:
        super().__init__(layer_id)
        self.layer_id = layer_id

    def __str__(self) -> str:
        known = ", ".join(sorted(_BY_ID))
        return f"unknown layer {self.layer_id!r} (known: {known})"


def get_layer(layer_id: str) -> LayerSpec:
    """The declaration of one layer; raises :class:`UnknownLayer`."""
    try:
        return _BY_ID[layer_id]
    except KeyError:
        raise UnknownLayer(layer_id) from None


def all_layers() -> tuple[LayerSpec, ...]:
    """Every declared layer, in listing order."""
    return LAYERS
