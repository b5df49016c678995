"""The closed loop of supervision warnings, against the session database.

The rule used here (``testloop.sample``) is registered by this module, so the
tests do not depend on any domain's rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
import time
import zlib

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from gis_server import cli_supervision
from gis_server.audit import Actor, audit_log
from gis_server.auth.principal import CURRENT
from gis_server.cli import app as cli_app
from gis_server.errors import (
    Forbidden,
    IllegalTransition,
    InvalidParameter,
    NotFound,
    PayloadTooLarge,
)
from gis_server.settings import database_settings
from models.supervision import loop
from models.supervision.engine import (
    DOMAINS,
    domain_settings,
    end_of_day,
    evaluate,
    load_domains,
)
from models.supervision.evidence import (
    EvidenceCorrupt,
    clean_name,
    read_evidence,
    store_evidence,
    supervision_evidence,
)
from models.supervision.loop import (
    ACTIONS,
    STATES,
    TRANSITIONS,
    dispatch,
    escalate_overdue,
    get_warning,
    list_warnings,
    raise_findings,
    rankings,
    rectify,
    supervision_warning_events,
    verify,
)
from models.supervision.rules import (
    DEADLINES,
    EVALUATORS,
    Finding,
    Rule,
    register_evaluator,
    register_rule,
    rules_of,
)
from models.supervision.settings import LoopSettings, loop_settings

RULE = register_rule(
    Rule(
        id="testloop.sample",
        domain="testloop",
        title="Test rule",
        title_zh="测试规则",
        source="[D] test only",
        confidence="D",
        subject_layer="buildings",
    )
)
ACTOR = Actor(name="test:loop", role="admin")
#: who records the rectifications (the four-eyes rule: not who verifies)
PARTY = Actor(name="test:party", role="housing_officer")
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
_subjects = itertools.count(1)


def png_bytes(color: int = 0) -> bytes:
    """A valid 1x1 PNG, different per ``color``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            len(data).to_bytes(4, "big")
            + body
            + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big")
        )

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    raw = b"\x00" + bytes([color % 256, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def settings(tmp_path) -> LoopSettings:
    return LoopSettings(evidence_dir=tmp_path / "evidence", evidence_max_bytes=4096)


@pytest.fixture(autouse=True)
def _clean(engine):
    yield
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM layer_supervision_warnings WHERE domain = 'testloop'")
        )
        conn.execute(text("DELETE FROM layer_buildings WHERE source = 'testloop'"))


def finding(subject: str | None = None, **kw) -> Finding:
    values = {
        "rule": RULE.id,
        "subject_layer": "buildings",
        "subject_id": subject or f"TL-{next(_subjects)}",
        "level": "yellow",
        "observed_at": T0 - dt.timedelta(days=1),
        "period": "2026-11",
        "summary": "sample finding",
        "evidence": {"value": 1.5, "day": dt.date(2026, 11, 1)},
        "responsible": "Enterprise A",
        "district": None,
    }
    values.update(kw)
    return Finding(**values)


def raise_one(conn, settings, **kw) -> int:
    res = raise_findings(conn, [finding(**kw)], ACTOR, at=T0, settings=settings)
    return res.ids[0]


def evidence_ref(conn, settings, color: int = 1):
    return store_evidence(conn, png_bytes(color), "site.png", "image/png", settings)


def bring_to(conn, state: str, settings) -> int:
    """A new warning moved along the loop into ``state``."""
    wid = raise_one(conn, settings)
    if state == "raised":
        return wid
    dispatch(conn, wid, ACTOR, at=T0 + dt.timedelta(hours=1), settings=settings)
    if state == "dispatched":
        return wid
    rectify(
        conn,
        wid,
        PARTY,
        "fixed",
        [evidence_ref(conn, settings)],
        at=T0 + dt.timedelta(days=2),
    )
    if state == "rectified":
        return wid
    verify(
        conn, wid, ACTOR, True, "ok", at=T0 + dt.timedelta(days=3), settings=settings
    )
    assert state == "closed"
    return wid


def act(conn, wid: int, action: str, settings) -> dict:
    at = T0 + dt.timedelta(days=5)
    if action == "dispatch":
        return dispatch(
            conn, wid, ACTOR, "Party B", note="go", at=at, settings=settings
        )
    if action == "rectify":
        ref = evidence_ref(conn, settings, color=7)
        return rectify(conn, wid, PARTY, "done", [ref], at=at)
    if action == "accept":
        return verify(conn, wid, ACTOR, True, "accepted", at=at, settings=settings)
    return verify(conn, wid, ACTOR, False, "photo unclear", at=at, settings=settings)


def counts(conn, wid: int) -> tuple[int, int]:
    events = conn.execute(
        select(func.count()).where(supervision_warning_events.c.warning_id == wid)
    ).scalar_one()
    audits = conn.execute(
        select(func.count()).where(
            audit_log.c.target_kind == "warning", audit_log.c.target == str(wid)
        )
    ).scalar_one()
    return events, audits


def state_of(conn, wid: int) -> str:
    return get_warning(conn, wid)["state"]


# -- the state machine --------------------------------------------------------


def test_transition_table_is_the_loop():
    assert set(TRANSITIONS) == {
        ("raised", "dispatch"),
        ("dispatched", "rectify"),
        ("rectified", "accept"),
        ("rectified", "reject"),
    }
    assert TRANSITIONS[("rectified", "reject")] == "dispatched"
    assert not any(
        target == "closed" and s != "rectified"
        for (s, _), target in TRANSITIONS.items()
    )


@pytest.mark.parametrize(("state", "action"), list(itertools.product(STATES, ACTIONS)))
def test_every_state_action_pair(engine, settings, state, action):
    with engine.begin() as conn:
        wid = bring_to(conn, state, settings)
        before = counts(conn, wid)
    legal = (state, action) in TRANSITIONS
    with engine.begin() as conn:
        if legal:
            out = act(conn, wid, action, settings)
            assert out["state"] == TRANSITIONS[(state, action)]
        else:
            with pytest.raises(IllegalTransition) as err:
                act(conn, wid, action, settings)
            assert err.value.code == "InvalidTransition"
    with engine.connect() as conn:
        after = counts(conn, wid)
        if legal:
            assert after == (before[0] + 1, before[1] + 1)
            assert state_of(conn, wid) == TRANSITIONS[(state, action)]
        else:
            assert after == before
            assert state_of(conn, wid) == state


def test_unknown_warning_is_not_found(engine, settings):
    with engine.begin() as conn, pytest.raises(NotFound):
        dispatch(conn, 10**12, ACTOR, "x", settings=settings)
    with engine.connect() as conn, pytest.raises(NotFound):
        get_warning(conn, 10**12)


def test_full_loop_with_send_back_writes_history_and_audit(engine, settings):
    with engine.begin() as conn:
        wid = raise_one(conn, settings, level="orange")
        out = dispatch(conn, wid, ACTOR, at=T0, settings=settings)
        assert out["responsible"] == "Enterprise A"  # the finding's party
        deadline = dt.datetime.fromisoformat(out["deadline"])
        assert deadline == T0 + dt.timedelta(days=settings.deadline_days_orange)
        ref = evidence_ref(conn, settings)
        rectify(conn, wid, PARTY, "rebuilt the wall", [ref], at=T0 + dt.timedelta(1))
        with pytest.raises(InvalidParameter):  # sending back needs a reason
            verify(conn, wid, ACTOR, False, "  ", settings=settings)
    with engine.begin() as conn:
        verify(
            conn,
            wid,
            ACTOR,
            False,
            "photo is of another site",
            at=T0 + dt.timedelta(2),
            settings=settings,
        )
        w = get_warning(conn, wid)
        assert w["state"] == "dispatched"
        assert w["deadline"] == T0 + dt.timedelta(
            days=2 + settings.deadline_days_orange
        )
        rectify(
            conn,
            wid,
            PARTY,
            "new photo",
            [evidence_ref(conn, settings, 2)],
            at=T0 + dt.timedelta(3),
        )
        verify(
            conn, wid, ACTOR, True, "销号", at=T0 + dt.timedelta(4), settings=settings
        )
    with engine.connect() as conn:
        w = get_warning(conn, wid)
        assert w["state"] == "closed" and w["closed_at"] == T0 + dt.timedelta(4)
        assert [e["action"] for e in w["events"]] == [
            "raise",
            "dispatch",
            "rectify",
            "reject",
            "rectify",
            "accept",
        ]
        assert w["events"][2]["evidence"] == [ref.as_dict()]
        assert w["events"][3]["note"] == "photo is of another site"
        audits = conn.execute(
            select(audit_log)
            .where(audit_log.c.target_kind == "warning", audit_log.c.target == str(wid))
            .order_by(audit_log.c.id)
        ).all()
        assert [a.action for a in audits] == [
            "warning.raise",
            "warning.dispatch",
            "warning.rectify",
            "warning.reject",
            "warning.rectify",
            "warning.accept",
        ]
        assert audits[0].before is None and audits[0].after["state"] == "raised"
        assert audits[1].before["state"] == "raised"
        assert audits[1].after["state"] == "dispatched"
        assert audits[1].after["responsible"] == "Enterprise A"
        assert audits[-1].before["state"] == "rectified"
        assert audits[-1].after["state"] == "closed"
        assert [(a.actor, a.actor_role) for a in audits] == [
            (ACTOR.name, "admin"),
            (ACTOR.name, "admin"),
            (PARTY.name, "housing_officer"),
            (ACTOR.name, "admin"),
            (PARTY.name, "housing_officer"),
            (ACTOR.name, "admin"),
        ]


def test_step_arguments_are_checked_before_anything_is_written(engine, settings):
    with engine.begin() as conn:
        wid = raise_one(conn, settings, responsible=None)
    with engine.begin() as conn:
        before = counts(conn, wid)
        with pytest.raises(InvalidParameter, match="responsible"):
            dispatch(conn, wid, ACTOR, settings=settings)
        with pytest.raises(InvalidParameter, match="future"):
            dispatch(
                conn,
                wid,
                ACTOR,
                "P",
                deadline=T0 - dt.timedelta(1),
                at=T0,
                settings=settings,
            )
        dispatch(conn, wid, ACTOR, "P", at=T0, settings=settings)
        with pytest.raises(InvalidParameter, match="evidence"):
            rectify(conn, wid, ACTOR, "done", [])
        fake = loop.EvidenceRef("0" * 64, "x.png", 1, "image/png")
        with pytest.raises(InvalidParameter, match="not stored"):
            rectify(conn, wid, ACTOR, "done", [fake])
        with pytest.raises(InvalidParameter, match="note"):
            rectify(conn, wid, ACTOR, " ", [evidence_ref(conn, settings)])
        assert counts(conn, wid) == (before[0] + 1, before[1] + 1)


# -- four eyes, concurrency ----------------------------------------------------


@pytest.mark.parametrize("accept", [True, False])
def test_whoever_recorded_the_rectification_may_not_verify_it(engine, settings, accept):
    with engine.begin() as conn:
        wid = bring_to(conn, "rectified", settings)  # rectified by PARTY
        before = counts(conn, wid)
        with pytest.raises(Forbidden, match="four-eyes"):
            verify(conn, wid, PARTY, accept, "自己核查", settings=settings)
        assert counts(conn, wid) == before and state_of(conn, wid) == "rectified"
        out = verify(conn, wid, ACTOR, accept, "复核", settings=settings)
        assert out["state"] == ("closed" if accept else "dispatched")


def test_four_eyes_looks_at_the_latest_reply_and_can_be_switched_off(engine, settings):
    with engine.begin() as conn:
        wid = bring_to(conn, "rectified", settings)  # first reply: PARTY
        verify(conn, wid, ACTOR, False, "补充照片", settings=settings)
        # the second reply is recorded by the supervisor himself
        rectify(conn, wid, ACTOR, "补充", [evidence_ref(conn, settings, 9)])
        with pytest.raises(Forbidden):
            verify(conn, wid, ACTOR, True, "ok", settings=settings)
        verify(conn, wid, PARTY, True, "ok", settings=settings)  # someone else
        assert state_of(conn, wid) == "closed"
    solo = settings.model_copy(update={"four_eyes": False})
    with engine.begin() as conn:
        wid = bring_to(conn, "rectified", settings)
        verify(conn, wid, PARTY, True, "ok", settings=solo)
        assert state_of(conn, wid) == "closed"


def test_two_verifies_at_once_the_second_is_an_illegal_transition(engine, settings):
    """The row lock serialises them; the second sees the warning closed."""
    with engine.begin() as conn:
        wid = bring_to(conn, "rectified", settings)
    other = Actor(name="test:other-supervisor", role="admin")
    outcome: dict[str, object] = {}
    first_locked = threading.Event()

    def second() -> None:
        first_locked.wait(10)
        try:
            with engine.begin() as conn:
                outcome["second"] = verify(
                    conn, wid, other, True, "我也销号", settings=settings
                )
        except Exception as exc:  # handed to the test thread
            outcome["second"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        verify(conn, wid, ACTOR, True, "销号", settings=settings)
        first_locked.set()
        time.sleep(0.5)  # the second verify is now waiting on the row lock
        assert thread.is_alive() and "second" not in outcome
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome["second"], IllegalTransition), outcome
    with engine.connect() as conn:
        w = get_warning(conn, wid)
        assert w["state"] == "closed"
        assert [e["action"] for e in w["events"]].count("accept") == 1


# -- deadlines and supervised listing ------------------------------------------


@pytest.fixture
def testloop_deadline():
    """A deadline hook for the test domain: 3 days from the notice, except
    for red warnings (None: the loop's default by level)."""
    calls: list[tuple[str, dt.datetime]] = []

    def hook(warning, at):
        calls.append((warning["rule"], at))
        return None if warning["level"] == "red" else at + dt.timedelta(days=3)

    DEADLINES["testloop"] = hook
    yield calls
    DEADLINES.pop("testloop", None)


def test_dispatch_and_send_back_use_the_domains_deadline(
    engine, settings, testloop_deadline
):
    with engine.begin() as conn:
        wid = raise_one(conn, settings)
        out = dispatch(conn, wid, ACTOR, at=T0, settings=settings)
        assert dt.datetime.fromisoformat(out["deadline"]) == T0 + dt.timedelta(days=3)
        rectify(conn, wid, PARTY, "done", [evidence_ref(conn, settings)], at=T0)
        back_at = T0 + dt.timedelta(days=1)
        verify(conn, wid, ACTOR, False, "不合格", at=back_at, settings=settings)
        assert get_warning(conn, wid)["deadline"] == back_at + dt.timedelta(days=3)
        assert testloop_deadline == [(RULE.id, T0), (RULE.id, back_at)]
        # the hook gives none: by level
        red = raise_one(conn, settings, level="red")
        out = dispatch(conn, red, ACTOR, at=T0, settings=settings)
        assert dt.datetime.fromisoformat(out["deadline"]) == T0 + dt.timedelta(
            days=settings.deadline_days_red
        )
        # a deadline the dispatcher gives wins over the hook
        given = raise_one(conn, settings)
        due = T0 + dt.timedelta(days=11)
        out = dispatch(conn, given, ACTOR, deadline=due, at=T0, settings=settings)
        assert dt.datetime.fromisoformat(out["deadline"]) == due


def test_supervised_listing_is_a_filterable_property(engine, settings):
    with engine.begin() as conn:
        listed = raise_one(conn, settings, listed=True)
        plain = raise_one(conn, settings)
        assert get_warning(conn, listed)["listed"] is True
        assert get_warning(conn, plain)["listed"] is False
        only = list_warnings(conn, domain="testloop", listed=True)
        others = list_warnings(conn, domain="testloop", listed=False)
        assert listed in {w["id"] for w in only}
        assert plain not in {w["id"] for w in only}
        assert plain in {w["id"] for w in others}
        assert listed not in {w["id"] for w in others}
        # the notice says so, whoever dispatches
        dispatch(conn, listed, ACTOR, note="限期整改", at=T0, settings=settings)
        dispatch(conn, plain, ACTOR, note="限期整改", at=T0, settings=settings)
        assert get_warning(conn, listed)["events"][-1]["note"] == "限期整改（挂牌督办）"
        assert get_warning(conn, plain)["events"][-1]["note"] == "限期整改"
        # seen again listed: the listing goes up (recorded), never down
        subject = get_warning(conn, plain)["subject_id"]
        raise_findings(
            conn, [finding(subject, listed=True)], ACTOR, at=T0, settings=settings
        )
        w = get_warning(conn, plain)
        assert w["listed"] is True and w["events"][-1]["action"] == "update"
        raise_findings(conn, [finding(subject)], ACTOR, at=T0, settings=settings)
        assert get_warning(conn, plain)["listed"] is True
        audit = conn.execute(
            select(audit_log.c.before, audit_log.c.after)
            .where(audit_log.c.action == "warning.update")
            .where(audit_log.c.target == str(plain))
        ).one()
        assert (audit.before["listed"], audit.after["listed"]) == (False, True)


# -- raising findings ---------------------------------------------------------


def test_findings_dedupe_and_level_only_goes_up(engine, settings):
    with engine.begin() as conn:
        f = finding(level="orange")
        first = raise_findings(conn, [f], ACTOR, at=T0, settings=settings)
        assert (first.new, first.updated, first.unchanged) == (1, 0, 0)
        wid = first.ids[0]
        again = raise_findings(conn, [f], ACTOR, at=T0, settings=settings)
        assert (again.new, again.updated, again.unchanged) == (0, 0, 1)
        assert again.ids == [wid]
        dispatch(conn, wid, ACTOR, at=T0, settings=settings)
        lower = finding(
            f.subject_id,
            level="yellow",
            observed_at=T0 + dt.timedelta(hours=2),
            evidence={"value": 2.0},
            responsible="Someone else",
        )
        res = raise_findings(
            conn, [lower], ACTOR, at=T0 + dt.timedelta(hours=3), settings=settings
        )
        assert (res.new, res.updated) == (0, 1)
        w = get_warning(conn, wid)
        assert w["level"] == "orange"  # never down while open
        assert w["state"] == "dispatched"  # a finding never moves the state
        assert w["evidence"] == {"value": 2.0}
        assert w["responsible"] == "Enterprise A"  # dispatched: party kept
        assert w["observed_at"] == T0 + dt.timedelta(hours=2)
        higher = finding(f.subject_id, level="red", observed_at=T0)
        raise_findings(
            conn, [higher], ACTOR, at=T0 + dt.timedelta(hours=4), settings=settings
        )
        w = get_warning(conn, wid)
        assert w["level"] == "red"
        assert w["events"][-1]["note"] == "level orange -> red"


def test_finding_after_closure_reopens_only_after_reopen_after_days(engine, settings):
    closed_at = T0 + dt.timedelta(days=3)  # bring_to closes here
    reopen = dt.timedelta(days=settings.reopen_after_days)
    assert settings.reopen_after_days == 30  # the documented default
    with engine.begin() as conn:
        wid = bring_to(conn, "closed", settings)
        w = get_warning(conn, wid)
        assert w["closed_at"] == closed_at
        late = closed_at + reopen + dt.timedelta(days=5)  # evaluation time

        def seen(observed: dt.datetime, at: dt.datetime = late):
            f = finding(w["subject_id"], observed_at=observed)
            return raise_findings(conn, [f], ACTOR, at=at, settings=settings)

        # before the closure, right after it, and exactly at the threshold:
        # the records catching up with the rectification, nothing changes
        for observed in (
            T0 - dt.timedelta(days=1),
            closed_at + dt.timedelta(days=1),
            closed_at + reopen,
        ):
            res = seen(observed)
            assert (res.new, res.unchanged, res.ids) == (0, 1, [wid]), observed
        # a standing condition observed "in the future" (an end of month) is
        # clamped to the evaluation time: still within the threshold
        res = seen(closed_at + reopen + dt.timedelta(days=9), at=closed_at + reopen)
        assert (res.new, res.ids) == (0, [wid])
        # just past the threshold: the next occurrence of the same key
        res = seen(closed_at + reopen + dt.timedelta(seconds=1))
        assert res.new == 1 and res.ids[0] != wid
        again = get_warning(conn, res.ids[0])
        assert again["state"] == "raised"
        assert again["occurrence"] == 2 and again["source_id"] == w["source_id"]
        assert again["observed_at"] == closed_at + reopen + dt.timedelta(seconds=1)
        assert get_warning(conn, wid)["state"] == "closed"


def test_reopen_after_days_is_a_setting(engine, settings):
    prompt = settings.model_copy(update={"reopen_after_days": 0})
    with engine.begin() as conn:
        wid = bring_to(conn, "closed", settings)
        w = get_warning(conn, wid)
        after = w["closed_at"] + dt.timedelta(minutes=1)
        f = finding(w["subject_id"], observed_at=after)
        res = raise_findings(conn, [f], ACTOR, at=after, settings=prompt)
        assert res.new == 1


def test_observed_at_in_the_future_counts_as_the_evaluation_time(engine, settings):
    with engine.begin() as conn:
        res = raise_findings(
            conn,
            [finding(observed_at=T0 + dt.timedelta(days=20))],
            ACTOR,
            at=T0,
            settings=settings,
        )
        assert get_warning(conn, res.ids[0])["observed_at"] == T0


def test_position_subject_district_or_city_hall(engine, settings):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO layer_buildings (source, source_id, geom) VALUES "
                "('testloop', 'TL-BLDG', ST_Multi(ST_GeomFromText("
                "'POLYGON((113.30 23.10, 113.31 23.10, 113.31 23.11, 113.30 23.11, "
                "113.30 23.10))', 4326)))"
            )
        )
        a = raise_one(conn, settings, subject="TL-BLDG")
        b = raise_one(conn, settings, subject="TL-NOWHERE")
        wa, wb = get_warning(conn, a), get_warning(conn, b)
    assert wa["located"] is True
    assert 113.30 < wa["lon"] < 113.31 and 23.10 < wa["lat"] < 23.11
    assert wb["located"] is False
    assert (wb["lon"], wb["lat"]) == (settings.fallback_lon, settings.fallback_lat)


# -- escalation ---------------------------------------------------------------


def test_escalation_of_overdue_steps_respects_the_interval(engine, settings):
    with engine.begin() as conn:
        undispatched = raise_one(conn, settings)  # raised at T0
        late = raise_one(conn, settings)
        dispatch(
            conn,
            late,
            ACTOR,
            "P",
            deadline=T0 + dt.timedelta(days=3),
            at=T0,
            settings=settings,
        )
        on_time = raise_one(conn, settings)
        dispatch(
            conn,
            on_time,
            ACTOR,
            "P",
            deadline=T0 + dt.timedelta(days=30),
            at=T0,
            settings=settings,
        )
        fresh_at = T0 + dt.timedelta(days=4)
        fresh = raise_findings(
            conn, [finding()], ACTOR, at=fresh_at, settings=settings
        ).ids[0]
        mine = {undispatched, late, on_time, fresh}

        now = T0 + dt.timedelta(days=4, hours=12)
        first = set(escalate_overdue(conn, now, ACTOR, settings)) & mine
        assert first == {undispatched, late}
        assert get_warning(conn, late)["escalation"] == 1
        assert get_warning(conn, late)["overdue"] is True
        assert get_warning(conn, on_time)["overdue"] is False
        assert get_warning(conn, fresh)["escalation"] == 0
        # within the interval: nothing more
        soon = now + dt.timedelta(days=settings.escalation_interval_days - 1)
        assert not set(escalate_overdue(conn, soon, ACTOR, settings)) & {late}
        assert get_warning(conn, late)["escalation"] == 1
        # each interval one more level, capped at 通报
        t = now
        for expected in (2, 3, 3):
            t += dt.timedelta(days=settings.escalation_interval_days)
            escalate_overdue(conn, t, ACTOR, settings)
            assert get_warning(conn, late)["escalation"] == expected
        events = [
            e for e in get_warning(conn, late)["events"] if e["action"] == "escalate"
        ]
        assert len(events) == 3 and "通报" in events[-1]["note"]
        audit = conn.execute(
            select(audit_log.c.before, audit_log.c.after)
            .where(
                audit_log.c.action == "warning.escalate",
                audit_log.c.target == str(late),
            )
            .order_by(audit_log.c.id)
        ).all()
        assert [(a.before["escalation"], a.after["escalation"]) for a in audit] == [
            (0, 1),
            (1, 2),
            (2, 3),
        ]
        # overdue filter and rankings see it
        overdue = list_warnings(
            conn, domain="testloop", overdue=True, now=t, settings=settings
        )
        assert {w["id"] for w in overdue} >= {undispatched, late}
        assert on_time not in {w["id"] for w in overdue}


def _overdue_from(conn, state: str, settings) -> tuple[int, dt.datetime, str]:
    """A warning in ``state`` and the moment its step becomes overdue."""
    wid = bring_to(conn, state, settings)
    w = get_warning(conn, wid)
    if state == "raised":
        return (
            wid,
            w["raised_at"] + dt.timedelta(days=settings.dispatch_within_days),
            "not dispatched",
        )
    if state == "dispatched":
        return wid, w["deadline"], "deadline"
    return (
        wid,
        w["rectified_at"] + dt.timedelta(days=settings.verify_within_days),
        "not verified",
    )


@pytest.mark.parametrize("state", ["raised", "dispatched", "rectified"])
def test_each_step_escalates_when_overdue(engine, settings, state):
    minute = dt.timedelta(minutes=1)
    with engine.begin() as conn:
        wid, due, why = _overdue_from(conn, state, settings)
        assert wid not in escalate_overdue(conn, due - minute, ACTOR, settings)
        assert get_warning(conn, wid)["overdue"] is False
        late = list_warnings(
            conn, domain="testloop", overdue=True, now=due - minute, settings=settings
        )
        assert wid not in {w["id"] for w in late}
        assert wid in escalate_overdue(conn, due + minute, ACTOR, settings)
        w = get_warning(conn, wid)
        assert (w["state"], w["escalation"], w["overdue"]) == (state, 1, True)
        event = w["events"][-1]
        assert event["action"] == "escalate" and why in event["note"]
        late = list_warnings(
            conn, domain="testloop", overdue=True, now=due + minute, settings=settings
        )
        assert wid in {w["id"] for w in late}


def test_a_closed_warning_never_escalates(engine, settings):
    with engine.begin() as conn:
        wid = bring_to(conn, "closed", settings)
        far = T0 + dt.timedelta(days=365)
        assert wid not in escalate_overdue(conn, far, ACTOR, settings)
        assert get_warning(conn, wid)["overdue"] is False


def test_list_and_rankings(engine, settings):
    with engine.begin() as conn:
        a = raise_one(
            conn, settings, level="red", district="天河区", responsible="Firm X"
        )
        raise_one(
            conn, settings, level="yellow", district="天河区", responsible="Firm X"
        )
        c = bring_to(conn, "closed", settings)
        rows = list_warnings(
            conn, domain="testloop", responsible="Firm X", now=T0, settings=settings
        )
        assert [w["level"] for w in rows] == ["red", "yellow"]
        assert rows[0]["id"] == a
        assert list_warnings(conn, domain="testloop", state="closed")[0]["id"] == c
        with pytest.raises(InvalidParameter):
            list_warnings(conn, state="bogus")
        with pytest.raises(InvalidParameter, match="NUL"):  # not a 500
            list_warnings(conn, rule="testloop\x00")
        with pytest.raises(InvalidParameter, match="NUL"):
            rankings(conn, "district", domain="\x00")
        ranks = rankings(conn, "district", now=T0, settings=settings)
        tianhe = next(r for r in ranks if r["key"] == "天河区")
        assert tianhe["total"] >= 2 and tianhe["red"] >= 1 and tianhe["open"] >= 2
        by_domain = {r["key"]: r for r in rankings(conn, "domain", now=T0)}
        assert by_domain["testloop"]["closed"] >= 1
        mine = rankings(conn, "responsible", domain="testloop", district="天河区")
        assert [(r["key"], r["total"], r["red"]) for r in mine] == [("Firm X", 2, 1)]
        with pytest.raises(InvalidParameter):
            rankings(conn, "colour")  # type: ignore[arg-type]


# -- evidence -----------------------------------------------------------------


def test_evidence_is_content_addressed_and_checked_on_read(engine, settings):
    data = png_bytes(3)
    sha = hashlib.sha256(data).hexdigest()
    with engine.begin() as conn:
        ref = store_evidence(conn, data, "../../etc/现场.png", None, settings)
        again = store_evidence(conn, data, "other.png", "image/png", settings)
        row = conn.execute(
            select(supervision_evidence).where(supervision_evidence.c.sha256 == sha)
        ).one()
    assert ref.sha256 == again.sha256 == sha and ref.content_type == "image/png"
    assert ref.name == "现场.png" and row.path == f"{sha[:2]}/{sha}"
    path = settings.evidence_dir / sha[:2] / sha
    assert read_evidence(sha, settings) == path.read_bytes() == data
    assert not list(settings.evidence_dir.rglob("*现场*"))
    path.write_bytes(data + b"tampered")
    with pytest.raises(EvidenceCorrupt):
        read_evidence(sha, settings)
    with pytest.raises(NotFound):
        read_evidence("../" + sha[3:], settings)
    with pytest.raises(NotFound):
        read_evidence("f" * 64, settings)


@pytest.mark.parametrize(
    ("data", "declared", "message"),
    [
        (b"GIF89a" + b"\0" * 20, "image/gif", "none of them"),
        (b"<html>", "image/png", "none of them"),
        (b"%PDF-1.4 x", "image/png", "declared as image/png"),
        (b"", "image/png", "empty"),
    ],
)
def test_evidence_refused(engine, settings, data, declared, message):
    with engine.begin() as conn, pytest.raises(InvalidParameter, match=message):
        store_evidence(conn, data, "x", declared, settings)


def test_evidence_over_the_limit_is_too_large(engine, settings):
    png = b"\x89PNG\r\n\x1a\n"
    limit = settings.evidence_max_bytes
    with engine.begin() as conn:
        at_limit = png + b"\0" * (limit - len(png))
        assert store_evidence(conn, at_limit, "ok.png", None, settings).size == limit
        with pytest.raises(PayloadTooLarge, match="GIS_LOOP_EVIDENCE_MAX_BYTES"):
            store_evidence(conn, at_limit + b"\0", "big.png", None, settings)


def test_clean_name():
    assert clean_name("..") == "evidence"
    assert clean_name("a/b\\c\x00d.jpg") == "cd.jpg"
    assert len(clean_name("x" * 500)) == 200


# -- schema -------------------------------------------------------------------


def test_migration_matches_the_declarations(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from layers import metadata

    mine = {
        "layer_supervision_warnings",
        "supervision_warning_events",
        "supervision_evidence",
    }

    def include(obj, name, type_, reflected, compare_to):
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) in mine

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include, "compare_type": True}
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []


# -- engine -------------------------------------------------------------------

#: What the test evaluator finds (empty unless a test fills it).
PENDING: list[Finding] = []


def _evaluate_testloop(conn, as_of: dt.date) -> list[Finding]:
    return list(PENDING)


register_evaluator("testloop", _evaluate_testloop)


@pytest.fixture
def pending():
    yield PENDING
    PENDING.clear()


def test_evaluate_raises_then_escalates(engine, settings, pending):
    old = T0 - dt.timedelta(days=20)
    pending += [finding(), finding(level="red")]
    with engine.begin() as conn:
        res = evaluate(conn, old.date(), ["testloop"], ACTOR, settings)
        assert (res["testloop"].new, res["testloop"].updated) == (2, 0)
        ids = res["testloop"].ids
        w = get_warning(conn, ids[0])
        assert w["raised_at"] == end_of_day(old.date())
        # raised 20 days ago, never dispatched: escalated by the next run
        again = evaluate(conn, T0.date(), ["testloop"], ACTOR, settings)
        # the first run clamped the observation to its own time; this one
        # sees the real one, later: an update, not a new warning
        assert (again["testloop"].new, again["testloop"].updated) == (0, 2)
        assert get_warning(conn, ids[0])["observed_at"] == T0 - dt.timedelta(days=1)
        assert get_warning(conn, ids[0])["escalation"] == 1
        with pytest.raises(InvalidParameter, match="no rules"):
            evaluate(conn, T0.date(), ["nosuchdomain"], ACTOR, settings)


def test_domains_load_and_their_settings_are_found():
    loaded = load_domains()
    # every declared domain registers an evaluator and at least one rule
    assert loaded == list(DOMAINS)
    assert set(DOMAINS) <= set(EVALUATORS)
    for domain in DOMAINS:
        rules = rules_of(domain)
        assert rules, f"domain {domain} declares no rule"
        values = domain_settings(domain)
        assert values is not None, f"domain {domain} has no settings class"
        for rule in rules:
            missing = [n for n in rule.settings if not hasattr(values, n)]
            assert not missing, f"{rule.id}: thresholds {missing} not in settings"
    assert domain_settings("nosuchdomain") is None
    # inspections count their notices' deadlines by severity (a hook)
    assert "inspections" in DEADLINES


# -- command line -------------------------------------------------------------


@pytest.fixture
def cli_env(db_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setenv("GIS_LOOP_EVIDENCE_DIR", str(tmp_path / "evidence"))
    # wide tables: rich would otherwise wrap them at the runner's 80 columns
    monkeypatch.setattr(cli_supervision.out, "_width", 250)
    database_settings.cache_clear()
    loop_settings.cache_clear()
    yield
    database_settings.cache_clear()
    loop_settings.cache_clear()


@pytest.fixture(scope="module")
def cli_accounts(engine) -> dict[str, str]:
    """Accounts for ``--as``: a river chief responsible for "CLI Firm" and a
    housing officer (who sees no warning without a district)."""
    from gis_server.auth import accounts

    names = {"chief": "loop-cli-chief", "housing": "loop-cli-housing"}
    with engine.begin() as conn:
        for role, name in names.items():
            try:
                accounts.get_user(conn, name)
            except NotFound:
                if role == "chief":
                    accounts.add_user(conn, name, "river_chief", chief_id="CLI Firm")
                else:
                    accounts.add_user(conn, name, "housing_officer", district="某区")
    return names


def test_cli_moves_a_warning_around_the_loop(
    engine, settings, cli_env, cli_accounts, tmp_path
):
    runner = CliRunner()
    with engine.begin() as conn:
        wid = raise_one(conn, settings, level="orange", responsible="CLI Firm")
    photo = tmp_path / "site photo.png"
    photo.write_bytes(png_bytes(42))
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image at all")
    chief = ["--as", cli_accounts["chief"]]

    def run(*args: str, code: int = 0) -> str:
        try:
            res = runner.invoke(cli_app, list(args))
        finally:  # --as sets the caller of this (in-process) run: unset it
            CURRENT.set(None)
        assert res.exit_code == code, res.output
        return " ".join(res.output.split())

    assert "CLI Firm" in run("warnings", "list", "--domain", "testloop")
    assert "cannot rectify" in run(
        "warnings", "rectify", str(wid), "--note", "x", "--photo", str(photo), code=1
    )
    # the responsible chief may not dispatch (nor close) their own warning
    assert "warnings.dispatch" in run(*chief, "warnings", "dispatch", str(wid), code=1)
    out = run("warnings", "dispatch", str(wid), "--deadline", "2099-01-31")
    assert "dispatched to CLI Firm" in out and "2099-01-31" in out
    assert "none of them" in run(
        *chief,
        "warnings",
        "rectify",
        str(wid),
        "--note",
        "x",
        "--photo",
        str(fake),
        code=1,
    )
    # the chief replies for their warning...
    run(
        *chief,
        "warnings",
        "rectify",
        str(wid),
        "--note",
        "已整改",
        "--photo",
        str(photo),
    )
    assert "warnings.verify" in run(
        *chief, "warnings", "verify", str(wid), "--accept", code=1
    )
    assert "reason" in run("warnings", "verify", str(wid), "--reject", code=1)
    # ... and the supervisor (the server's own account here) verifies
    assert "sent back" in run(
        "warnings", "verify", str(wid), "--reject", "--note", "照片不清"
    )
    assert "cannot accept" in run("warnings", "verify", str(wid), "--accept", code=1)
    # a reply recorded by the supervisor: he may not close it himself
    run("warnings", "rectify", str(wid), "--note", "补充", "--photo", str(photo))
    assert "four-eyes" in run("warnings", "verify", str(wid), "--accept", code=1)
    # out of the housing officer's scope: not found, as in the API
    assert "no warning" in run(
        "--as",
        cli_accounts["housing"],
        "warnings",
        "verify",
        str(wid),
        "--reject",
        "--note",
        "x",
        code=1,
    )
    with engine.begin() as conn:  # another supervisor closes it
        verify(conn, wid, ACTOR, True, "ok", settings=settings)
    shown = run("warnings", "show", str(wid))
    for action in ("raise", "dispatch", "rectify", "reject", "accept"):
        assert action in shown
    assert "site photo.png" in shown
    assert "no warning" in run("warnings", "show", "999999999", code=1)
    assert "warnings.escalate" in run(*chief, "warnings", "escalate", code=1)
    assert "escalated" in run("warnings", "escalate")
    assert "testloop" in run("warnings", "rank", "domain")
    assert "testloop.sample" in run("supervision", "rules", "--domain", "testloop")
    assert "no rules" in run("supervision", "rules", "--domain", "nosuch", code=1)
    assert "testloop" in run(
        "supervision", "evaluate", "--domain", "testloop", "--as-of", "2026-11-02"
    )
    with engine.connect() as conn:
        audits = conn.execute(
            select(audit_log.c.actor, audit_log.c.action)
            .where(audit_log.c.target == str(wid))
            .order_by(audit_log.c.id)
        ).all()
    by = {
        (a.actor if not a.actor.startswith("cli:") else "cli", a.action) for a in audits
    }
    assert ("cli", "warning.dispatch") in by
    assert (cli_accounts["chief"], "warning.rectify") in by
    assert ("cli", "warning.reject") in by


def test_cli_lists_supervised_listing(engine, settings, cli_env):
    with engine.begin() as conn:
        listed = raise_one(conn, settings, listed=True, summary="挂牌的问题")
        raise_one(conn, settings, summary="普通的问题")
    res = CliRunner().invoke(
        cli_app, ["warnings", "list", "--domain", "testloop", "--listed"]
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert str(listed) in out and "挂牌的问题" in out and "挂牌督办" in out
    assert "普通的问题" not in out
    res = CliRunner().invoke(
        cli_app, ["warnings", "list", "--domain", "testloop", "--not-listed"]
    )
    assert "普通的问题" in res.output and "挂牌的问题" not in res.output


# -- demo ---------------------------------------------------------------------


def test_demo_png_is_valid_evidence():
    from models.supervision.demo import _plain_png, demo_png
    from models.supervision.evidence import sniff_content_type

    assert sniff_content_type(demo_png(1)) == "image/png"
    assert demo_png(1) == demo_png(1) != demo_png(2)
    plain = _plain_png((4, 3), (1, 2, 3))
    assert sniff_content_type(plain) == "image/png"
    try:
        from PIL import Image
    except ImportError:
        return
    import io

    assert Image.open(io.BytesIO(plain)).size == (4, 3)


@pytest.fixture(scope="module")
def demo_db(db_settings):
    """A database of its own (the demo writes every domain's feeds)."""
    from gis_server import db

    settings = db.create_database(db_settings, "gis_test_supervision_demo")
    engine = db.make_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()
        db.drop_database(db_settings, "gis_test_supervision_demo")


def test_demo_shows_every_state(demo_db, tmp_path):
    from ingest.demo_city import AS_OF, generate_city
    from ingest.loader import load_batch
    from layers import get_layer
    from models.supervision.demo import load_demo

    city = generate_city(buildings=400, sites=40, seed=5)
    for layer_id, batch in city.items():
        load_batch(demo_db, get_layer(layer_id), batch, source="demo", progress=False)
    settings = LoopSettings(evidence_dir=tmp_path / "evidence")
    summary = load_demo(demo_db, 5, AS_OF, settings)
    assert summary["domains"], summary
    assert all(f["rejected"] == 0 for f in summary["feeds"].values()), summary
    assert set(summary["states"]) == set(STATES), summary
    assert summary["overdue"] > 0 and summary["escalated"] > 0
    with demo_db.connect() as conn:
        sent_back = conn.execute(
            select(func.count()).where(supervision_warning_events.c.action == "reject")
        ).scalar_one()
        located = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE located), count(*) "
                "FROM layer_supervision_warnings"
            )
        ).one()
    assert sent_back > 0
    assert located[0] > 0
    again = load_demo(demo_db, 5, AS_OF, settings)  # re-runnable
    assert sum(r["new"] for r in again["raised"].values()) == 0
    assert again["states"] == summary["states"]
