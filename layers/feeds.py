"""Record feeds: tables of dated records that are not map features.

A supervision system keeps more than map features: structural readings per
building, batching records per concrete plant, attendance per worker, monthly
metrics per provident-fund centre, inspection records. Each such table is one
:class:`FeedSpec`: its id (public: ``gis-server ingest feed <id>``), typed
columns (the same :class:`~layers.base.Prop` vocabulary as layer properties,
so source names are matched and values coerced by the same code), and the
natural key a re-loaded record is matched on. The table, the ingest and the
report are derived from the declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from layers.base import Prop

#: Columns every feed table has besides its declared ones.
FEED_RESERVED = frozenset({"id", "source", "extra", "loaded_at"})


@dataclass(frozen=True)
class FeedSpec:
    """A feed of records: one table ``feed_<id>``, upserted on ``key``.

    ``subject`` names the layer the records are about and the column holding
    that layer's ``subject_key`` (its ``source_id`` unless said otherwise:
    ``("buildings", "building_id")``), so rules can place their warnings on
    the map. It also says who reads the records: a record is visible exactly
    when its subject feature is (``gis_server.auth.dbsecurity`` derives the
    row-level policy from it). A feed whose records name no feature says so
    instead with ``parent`` (records belonging to a record of another feed,
    visible with it) or ``readers`` (records about a layer as a whole, read
    by every reader of the layer, ``"any"``, or only by those reading all of
    its features, ``"all"``). Every feed declares one of the three.
    """

    id: str
    title: str
    title_zh: str
    description: str
    columns: tuple[Prop, ...]
    #: the natural key: a record loaded again with the same key replaces the old
    key: tuple[str, ...]
    #: columns a record cannot go without (the key columns always are)
    required: tuple[str, ...] = ()
    #: supervision domain (``buildings``, ``concrete``, ``sites``, ...)
    domain: str = ""
    #: (layer id, column holding the subject feature's ``subject_key``)
    subject: tuple[str, str] | None = None
    #: the subject layer's column the records name (``source_id``, or a code)
    subject_key: str = "source_id"
    #: (feed id, column): each record belongs to the record of that feed with
    #: the same value in that column, and is visible when that one is
    parent: tuple[str, str] | None = None
    #: (layer id, "any" | "all"): records about the layer as a whole
    readers: tuple[str, Literal["any", "all"]] | None = None
    #: a check of one coerced record (column -> value): the reason to reject
    #: it, or None (rules no column type can say: "month is a first day")
    row_check: Callable[[dict[str, Any]], str | None] | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"feed {self.id}: duplicate column names")
        if set(names) & FEED_RESERVED:
            raise ValueError(f"feed {self.id}: reserved column names")
        missing = [k for k in (*self.key, *self.required) if k not in names]
        if missing or not self.key:
            raise ValueError(f"feed {self.id}: key/required not declared: {missing}")
        if self.subject and self.subject[1] not in names:
            raise ValueError(f"feed {self.id}: subject column {self.subject[1]}")
        if self.parent and self.parent[1] not in names:
            raise ValueError(f"feed {self.id}: parent column {self.parent[1]}")
        if self.readers and self.readers[1] not in ("any", "all"):
            raise ValueError(f"feed {self.id}: readers must be 'any' or 'all'")
        declared = [x for x in (self.subject, self.parent, self.readers) if x]
        if len(declared) != 1:
            raise ValueError(
                f"feed {self.id}: declare who reads it: exactly one of subject, "
                "parent, readers"
            )

    @property
    def table(self) -> str:
        return f"feed_{self.id}"

    @property
    def prop_by_name(self) -> dict[str, Prop]:
        return {c.name: c for c in self.columns}

    @property
    def properties(self) -> tuple[Prop, ...]:
        """The columns under the name field matching expects of a layer."""
        return self.columns

    @property
    def must_have(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.key, *self.required)))


_FEEDS: dict[str, FeedSpec] = {}


def register_feed(spec: FeedSpec) -> FeedSpec:
    """Declare a feed (each domain module calls this once per feed)."""
    if spec.id in _FEEDS and _FEEDS[spec.id] != spec:
        raise ValueError(f"two feeds share the id {spec.id!r}")
    _FEEDS[spec.id] = spec
    return spec


def get_feed(feed_id: str) -> FeedSpec:
    try:
        return _FEEDS[feed_id]
    except KeyError:
        known = ", ".join(sorted(_FEEDS)) or "none"
        raise KeyError(f"unknown feed {feed_id!r} (known: {known})") from None


def all_feeds() -> tuple[FeedSpec, ...]:
    return tuple(_FEEDS.values())
