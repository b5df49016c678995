"""Demo of the supervision systems: invented records, rules, and a played loop.

:func:`load_demo` asks every domain module for its demo records
(``demo_records(conn, seed, as_of)``, invented data), loads them with the
ordinary feed ingest, evaluates the rules, and then plays the loop on a
deterministic share of the new warnings so that the map shows every state:
some stay raised (and become overdue after a day), some are dispatched (some
past their deadline), some rectified with a generated photo, some closed,
some sent back. Overdue ones are escalated.

Time line: each finding is raised when it was observed (clamped to the hour
before the demo's "now", the end of ``as_of`` or the current time if
earlier); the steps of its loop are placed at fixed fractions of the time
since. All of it is synthetic and labelled so (source ``demo``, actors
``demo:*``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import logging
import random
import zlib
from collections import Counter
from typing import Any

from sqlalchemy import Engine, func, select

from gis_server.audit import Actor
from models.supervision.engine import DOMAINS, end_of_day, load_domains
from models.supervision.evidence import store_evidence
from models.supervision.loop import (
    dispatch,
    escalate_overdue,
    raise_findings,
    rectify,
    verify,
    warnings_table,
)
from models.supervision.rules import EVALUATORS
from models.supervision.settings import LoopSettings, loop_settings

log = logging.getLogger("gis_server.supervision.demo")

SYSTEM = Actor(name="demo:rules", role="system")
SUPERVISOR = Actor(name="demo:supervisor", role="supervisor")
PARTY = Actor(name="demo:responsible-party", role="party")

#: Share of the new warnings left in each story (the rest stay raised).
STORIES: tuple[tuple[str, float], ...] = (
    ("raised", 0.20),
    ("dispatched", 0.30),
    ("rectified", 0.15),
    ("closed", 0.20),
    ("sent_back", 0.15),
)


def demo_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG standing in for a site photo (its colour depends on ``seed``).

    Drawn with Pillow when it is installed, otherwise written by hand (zlib).
    """
    rng = random.Random(seed)
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return _plain_png(size, color)
    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    draw.rectangle((4, 4, size[0] - 5, size[1] - 5), outline=(255, 255, 255))
    draw.text((8, size[1] // 2 - 6), f"#{seed}", fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _plain_png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        crc = (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + body + crc

    width, height = size
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\0\0\0"
    rows = b"".join(b"\0" + bytes(color) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _demo_records(engine: Engine, seed: int, as_of: dt.date) -> dict[str, list]:
    """Every domain's demo records, feed id -> records."""
    records: dict[str, list] = {}
    for domain in DOMAINS:
        module = importlib.import_module(f"models.supervision.{domain}")
        make = getattr(module, "demo_records", None)
        if make is None:
            log.warning("domain has no demo records", extra={"domain": domain})
            continue
        with engine.connect() as conn:
            for feed_id, rows in make(conn, seed, as_of).items():
                records.setdefault(feed_id, []).extend(rows)
    return records


def _story(rng: random.Random) -> str:
    x = rng.random()
    for name, share in STORIES:
        if x < share:
            return name
        x -= share
    return "raised"


def load_demo(
    engine: Engine,
    seed: int,
    as_of: dt.date,
    settings: LoopSettings | None = None,
) -> dict[str, Any]:
    """Load the demo records, evaluate the rules, play the loop; a summary.

    Returns ``{"domains": [...], "feeds": {feed: {read, inserted, updated,
    rejected}}, "raised": {domain: {new, updated, unchanged}}, "states":
    {state: n}, "overdue": n, "escalated": n}``.
    """
    from ingest.feeds import load_feed
    from layers.feeds import get_feed

    settings = settings or loop_settings()
    domains = load_domains()
    feeds: dict[str, dict[str, int]] = {}
    for feed_id, rows in _demo_records(engine, seed, as_of).items():
        report = load_feed(engine, get_feed(feed_id), records=rows, source="demo")
        feeds[feed_id] = {
            "read": report.read,
            "inserted": report.inserted,
            "updated": report.updated,
            "rejected": report.rejected,
        }
    now = end_of_day(as_of)
    raised: dict[str, dict[str, int]] = {}
    new_ids: list[int] = []
    with engine.begin() as conn:
        for domain in sorted(EVALUATORS):
            if domain not in domains:
                continue
            counts = Counter()
            for finding in EVALUATORS[domain](conn, as_of):
                at = min(finding.observed_at, now - dt.timedelta(hours=1))
                res = raise_findings(conn, [finding], SYSTEM, at=at, settings=settings)
                counts.update(new=res.new, updated=res.updated, unchanged=res.unchanged)
                if res.new:
                    new_ids += res.ids
            raised[domain] = {k: counts[k] for k in ("new", "updated", "unchanged")}
        played = _play(conn, sorted(set(new_ids)), seed, now, settings)
        escalated: set[int] = set()
        step = dt.timedelta(days=settings.escalation_interval_days)
        for back in (2, 1, 0):  # three rounds: up to 通报 for the oldest
            escalated |= set(
                escalate_overdue(conn, now - back * step, SYSTEM, settings)
            )
        t = warnings_table
        states = dict(
            conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all()
        )
        overdue = conn.execute(
            select(func.count()).where(t.c.overdue.is_(True))
        ).scalar_one()
    summary = {
        "domains": domains,
        "feeds": feeds,
        "raised": raised,
        "played": played,
        "states": states,
        "overdue": overdue,
        "escalated": len(escalated),
    }
    log.info("supervision demo loaded", extra={"summary": summary})
    return summary


def _play(
    conn, ids: list[int], seed: int, now: dt.datetime, settings: LoopSettings
) -> dict[str, int]:
    """Move each new warning along a story drawn deterministically from ``seed``."""
    rng = random.Random(seed)
    played: Counter[str] = Counter()
    t = warnings_table
    rows = conn.execute(
        select(t.c.id, t.c.raised_at, t.c.responsible, t.c.level)
        .where(t.c.id.in_(ids))
        .order_by(t.c.id)
    ).all()
    for row in rows:
        story = _story(rng)
        age = now - row.raised_at
        if story != "raised" and age < dt.timedelta(hours=4):
            story = "raised"  # too recent for a story
        played[story] += 1
        if story == "raised":
            continue
        at = row.raised_at + age / 8
        party = row.responsible or "demo responsible party"
        dispatch(
            conn,
            row.id,
            SUPERVISOR,
            party,
            note="请按期整改并回复",
            at=at,
            settings=settings,
        )
        if story == "dispatched":
            continue
        photo = store_evidence(
            conn,
            demo_png(seed * 100_003 + row.id),
            f"整改照片-{row.id}.png",
            "image/png",
            settings,
        )
        rectify(
            conn,
            row.id,
            PARTY,
            "已完成整改，附现场照片",
            [photo],
            at=row.raised_at + age / 2,
        )
        if story == "rectified":
            continue
        verify_at = row.raised_at + age * 3 / 4
        if story == "closed":
            verify(
                conn,
                row.id,
                SUPERVISOR,
                True,
                "复核通过，予以销号",
                at=verify_at,
                settings=settings,
            )
        else:
            verify(
                conn,
                row.id,
                SUPERVISOR,
                False,
                "照片不能反映整改结果，请补充",
                at=verify_at,
                settings=settings,
            )
    return dict(played)
