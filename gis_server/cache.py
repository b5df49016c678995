"""Layer data versions and the in-process tile cache.

Every layer table has a statement trigger that bumps ``layer_versions`` and
sends ``pg_notify('gis_layer_changed', layer_id)`` in the same transaction as
the change, whatever made it (the API, an ingest, a recomputation, plain SQL).
:class:`LayerVersions` LISTENs on that channel in a background thread with its
own connection, so the version -- and with it every cache key and ETag -- moves
within milliseconds of the commit. While the listener is not connected (start,
database restart) the version is read from the table on every request instead,
so a cached tile is never served for data that has changed.

:class:`TileCache` is an LRU bounded in bytes, keyed by layer, version, format
and tile: a new version makes the old entries unreachable at once; they are
also dropped when the change is heard, to free the memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from gis_server.errors import DatabaseUnavailable
from gis_server.listen import Listener

log = logging.getLogger("gis_server.cache")

CHANNEL = "gis_layer_changed"

_VERSION_SQL = (
    "SELECT layer_id, version, "
    "(extract(epoch FROM changed_at) * 1000000)::bigint FROM layer_versions"
)


def scoped_tag(tag: str, scope_key: str) -> str:
    """The version tag of what callers of one scope see of a layer.

    Callers reaching every feature (scope ``all``) share ``tag``; a row scope
    (``district=天河区``) gets a tag of its own, so that cache entries and
    ETags of callers with different scopes never meet.

    >>> scoped_tag("12.6450e4df4a000", "all")
    '12.6450e4df4a000'
    >>> scoped_tag("12.6450e4df4a000", "district=x")
    '12.6450e4df4a000~2c2f944ed5'
    """
    if scope_key == "all":
        return tag
    return f"{tag}~{hashlib.sha1(scope_key.encode()).hexdigest()[:10]}"


def version_tag(version: int, changed_at_us: int) -> str:
    """A short tag naming one data version of a layer.

    The change time makes tags of a re-created database differ from those
    of the old one, even where the counters are equal.

    >>> version_tag(12, 1764777600000000)
    '12.6450e4df4a000'
    """
    return f"{version}.{changed_at_us:x}"


class LayerVersions(Listener):
    """The data version of every layer, pushed by the database.

    Parameters
    ----------
    dsn
        libpq connection string of the database.
    listen
        Start the LISTEN thread; when false every lookup reads the table.
    reconnect_s
        Seconds between attempts to re-open a lost listener connection.
    """

    channel = CHANNEL
    thread_name = "gis-layer-listener"
    application_name = "gis-server-listener"
    lost_message = "reading versions per request until it is back"
    log = log

    def __init__(self, dsn: str, *, listen: bool = True, reconnect_s: float = 1.0):
        super().__init__(dsn, reconnect_s=reconnect_s)
        self._listening = listen
        self._tags: dict[str, str] = {}
        self._callbacks: list[Callable[[str], None]] = []
        #: one connection for reads while not listening, shared under a lock
        self._conn = None
        self._conn_lock = threading.Lock()

    # -- public ----------------------------------------------------------------

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(layer_id)`` in the listener thread on each change."""
        self._callbacks.append(callback)

    def start(self) -> None:
        if self._listening:
            super().start()

    def stop(self) -> None:
        super().stop()
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def tag(self, layer_id: str) -> str:
        """The current version tag of a layer.

        Raises
        ------
        DatabaseUnavailable
            Not listening and the database cannot be reached.
        """
        if self._live:
            tag = self._tags.get(layer_id)
            if tag is not None:
                return tag
        return self._read_one(layer_id)

    def known_tag(self, layer_id: str) -> str | None:
        """The tag from memory when listening, else None (never blocks)."""
        return self._tags.get(layer_id) if self._live else None

    # -- internals ---------------------------------------------------------------

    def _read_one(self, layer_id: str) -> str:
        """Read one version from the table (degraded mode: not listening)."""
        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg2.connect(
                            self._dsn,
                            connect_timeout=5,
                            application_name="gis-server-versions",
                        )
                        self._conn.autocommit = True
                    with self._conn.cursor() as cur:
                        cur.execute(_VERSION_SQL + " WHERE layer_id = %s", (layer_id,))
                        row = cur.fetchone()
                    return version_tag(row[1], row[2]) if row else "0.0"
                except psycopg2.Error as exc:
                    if self._conn is not None and not self._conn.closed:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise DatabaseUnavailable(
                            "the database cannot be reached; retry shortly"
                        ) from exc
        raise AssertionError("unreachable")

    def _read_all(self, cur) -> dict[str, str]:
        cur.execute(_VERSION_SQL)
        return {layer: version_tag(v, t) for layer, v, t in cur.fetchall()}

    def connected(self, cur) -> None:
        self._tags = self._read_all(cur)

    def notified(self, cur, payloads: set[str]) -> None:
        cur.execute(_VERSION_SQL + " WHERE layer_id = ANY(%s)", (list(payloads),))
        fresh = {layer: version_tag(v, t) for layer, v, t in cur.fetchall()}
        self._tags = {**self._tags, **fresh}
        for layer_id in payloads:
            log.debug(
                "layer changed",
                extra={"layer": layer_id, "version": fresh.get(layer_id)},
            )
            for callback in self._callbacks:
                try:
                    callback(layer_id)
                except Exception:  # a cache callback must not kill the thread
                    log.exception(
                        "layer change callback failed", extra={"layer": layer_id}
                    )


@dataclass(frozen=True)
class CachedTile:
    """A tile as kept in the cache: bytes (gzipped or not) and its headers."""

    content: bytes
    gzipped: bool
    features: int
    truncated: bool

    @property
    def size(self) -> int:
        return len(self.content) + 200  # bytes plus a rough entry overhead


class TileCache:
    """An LRU of tiles bounded in bytes; thread-safe.

    Keys start with the layer id (``(layer_id, version_tag, ...)``), so
    :meth:`drop_layer` can free one layer's entries.

    >>> cache = TileCache(max_bytes=1000)
    >>> cache.put(("a", "1", 0), CachedTile(b"x" * 500, False, 1, False))
    >>> cache.put(("b", "1", 0), CachedTile(b"y" * 500, False, 1, False))
    >>> cache.get(("a", "1", 0)) is None  # evicted: 2 x 700 > 1000
    True
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> CachedTile | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Hashable, entry: CachedTile) -> None:
        size = entry.size
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    def drop_layer(self, layer_id: str) -> int:
        """Forget every tile of a layer; returns how many were dropped."""
        with self._lock:
            keys = [k for k in self._entries if k[0] == layer_id]  # type: ignore[index]
            for key in keys:
                self._bytes -= self._entries.pop(key).size
        return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
