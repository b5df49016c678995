"""Layer versions (LISTEN/NOTIFY) and the tile cache, against a real PostGIS."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from gis_server.cache import CachedTile, LayerVersions, TileCache
from gis_server.errors import DatabaseUnavailable


def entry(n: int) -> CachedTile:
    return CachedTile(b"x" * n, False, 1, False)


def test_cache_is_bounded_in_bytes_and_lru():
    cache = TileCache(max_bytes=3 * entry(100).size)
    for i in range(3):
        cache.put(("a", "1", i), entry(100))
    assert cache.get(("a", "1", 0)) is not None  # 0 is now the most recent
    cache.put(("a", "1", 3), entry(100))
    assert cache.get(("a", "1", 1)) is None  # least recently used went first
    assert cache.get(("a", "1", 0)) is not None
    assert cache.bytes <= cache.max_bytes
    assert len(cache) == 3


def test_cache_replaces_and_drops_layers():
    cache = TileCache(max_bytes=10_000)
    cache.put(("a", "1", 0), entry(100))
    cache.put(("a", "1", 0), entry(300))
    assert cache.bytes == entry(300).size
    cache.put(("b", "1", 0), entry(100))
    assert cache.drop_layer("a") == 1
    assert cache.get(("a", "1", 0)) is None
    assert cache.get(("b", "1", 0)) is not None
    assert cache.bytes == entry(100).size


def test_entry_larger_than_cache_is_not_kept():
    cache = TileCache(max_bytes=100)
    cache.put(("a", "1", 0), entry(1000))
    assert len(cache) == 0 and cache.bytes == 0
    assert not TileCache(0).enabled


@pytest.fixture
def dsn(db_settings) -> str:
    from sqlalchemy.engine import make_url

    return (
        make_url(db_settings.effective_url())
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def _bump(engine, layer: str = "plants") -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE layer_{layer} SET source = source WHERE false"))


def _wait(predicate, timeout: float = 3.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
    return time.monotonic() - start


def test_listener_hears_changes_at_once(dsn, engine):
    versions = LayerVersions(dsn)
    heard: list[str] = []
    versions.on_change(heard.append)
    versions.start()
    try:
        assert versions.wait_live(10)
        before = versions.tag("plants")
        other = versions.tag("buildings")
        _bump(engine)  # a statement that touches no row still bumps
        elapsed = _wait(lambda: versions.tag("plants") != before)
        assert elapsed < 1.0
        assert "plants" in heard
        assert versions.tag("buildings") == other
    finally:
        versions.stop()
    assert not versions.live


def test_listener_reconnects_and_catches_up(dsn, engine):
    versions = LayerVersions(dsn, reconnect_s=0.1)
    versions.start()
    try:
        assert versions.wait_live(10)
        before = versions.tag("plants")
        with engine.begin() as conn:
            killed = (
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'gis-server-listener' "
                        "AND datname = current_database()"
                    )
                )
                .scalars()
                .all()
            )
        assert killed and all(killed)
        _bump(engine)  # may happen while the listener is away
        # while away, tags come from the table, so they are never stale
        _wait(lambda: versions.tag("plants") != before)
        _wait(lambda: versions.live)
        after = versions.tag("plants")
        _bump(engine)
        _wait(lambda: versions.tag("plants") != after)
    finally:
        versions.stop()


def test_without_listening_tags_are_read_each_time(dsn, engine):
    versions = LayerVersions(dsn, listen=False)
    versions.start()
    assert not versions.live
    before = versions.tag("plants")
    _bump(engine)
    assert versions.tag("plants") != before
    assert versions.tag("no_such_layer") == "0.0"
    versions.stop()


def test_unreachable_database_is_unavailable():
    versions = LayerVersions(
        "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1", listen=False
    )
    with pytest.raises(DatabaseUnavailable):
        versions.tag("plants")
