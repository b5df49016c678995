"""``gis-server supervision ...``, ``gis-server warnings ...`` and ``ingest feed``.

- ``ingest feed FEED FILE`` loads a record feed (CSV/TSV/JSON/JSONL);
- ``supervision rules`` lists the rules with their sources, confidence marks
  and the current values of their thresholds; ``supervision evaluate`` runs
  them and raises warnings;
- ``warnings list|show|dispatch|rectify|verify|escalate|rank`` move warnings
  along their closed loop (every step recorded in the audit log against the
  ``--as`` account, else ``cli:<os user>``). With ``--as``, each step asks
  the account's role for the step's permission as the API does
  (``warnings.dispatch``, ``warnings.rectify``, ``warnings.verify``,
  ``warnings.escalate``); without it the command runs as the server itself.
  The loop's four-eyes rule holds either way: whoever recorded a
  rectification does not verify it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gis_server.audit import Actor, record_ingest
from gis_server.errors import GisServerError, StrictIngestFailed

console = Console(stderr=True)
out = Console()

supervision_app = typer.Typer(
    help="Supervision rules of every domain: list them, evaluate them.",
    no_args_is_help=True,
)
warnings_app = typer.Typer(
    help="Supervision warnings and their closed loop (预警闭环): raised -> "
    "dispatched -> rectified -> closed, or sent back.",
    no_args_is_help=True,
)

#: Date-times without a zone are China Standard Time.
CST = dt.timezone(dt.timedelta(hours=8))


def _actor() -> Actor:
    """Who the audit log records: the ``--as`` account, else the OS user."""
    from gis_server.auth.principal import CURRENT

    principal = CURRENT.get()
    if principal is not None and not principal.anonymous:
        return Actor(name=principal.username, role=principal.role, client="cli")
    return Actor(name=f"cli:{getpass.getuser()}", role="admin", client="cli")


def _allowed(permission: str) -> None:
    """With ``--as``: the account must hold ``permission`` and write the
    warnings layer (its scope is the database's), as in the API."""
    from gis_server.auth import policy
    from gis_server.auth.principal import CURRENT
    from layers import get_layer

    principal = CURRENT.get()
    if principal is None:  # the server's own scope
        return
    try:
        policy.require_write(principal, get_layer("supervision_warnings"))
        policy.require(principal, permission)
    except GisServerError as exc:
        _fail(exc)


def _engine():
    from gis_server import db, overrides
    from gis_server.settings import database_settings

    engine = db.open_engine(database_settings())
    overrides.load(engine)  # the rule settings in force (env + overrides)
    return engine


def _fail(exc: GisServerError) -> None:
    console.print(f"[red]error:[/] {exc.description}", highlight=False)
    raise typer.Exit(1) from exc


def _time(value: str | None, *, end_of_day: bool = False) -> dt.datetime | None:
    """ISO date or date-time; a bare date is the end of that day (deadlines)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            t = dt.datetime.combine(
                day, dt.time(23, 59, 59) if end_of_day else dt.time()
            )
        else:
            t = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO date or date-time: {value!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=CST)


def _run(fn, *args, **kwargs) -> Any:
    """Run a loop function in one transaction; domain errors end the command."""
    engine = _engine()
    try:
        with engine.begin() as conn:
            return fn(conn, *args, **kwargs)
    except GisServerError as exc:
        _fail(exc)
    finally:
        engine.dispose()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(CST).strftime("%Y-%m-%d %H:%M")
    return str(value)


# -- ingest feed ----------------------------------------------------------------


def ingest_feed_command(
    feed: Annotated[str, typer.Argument(help="Feed id (see the feed declarations).")],
    path: Annotated[Path, typer.Argument(help="CSV/TSV/JSON/JSONL file of records.")],
    source: Annotated[
        str | None,
        typer.Option(help="Source name stored with each record (default: file name)."),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="Map a source field to a column: SRC=COLUMN (repeatable)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Write nothing if any row is rejected.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write the report here (.json or .csv; default var/reports/)."
        ),
    ] = None,
) -> None:
    """Load a file of records into a supervision feed (upsert on its key)."""
    from gis_server.settings import ingest_settings
    from ingest.feeds import load_feed
    from ingest.fields import parse_field_options
    from ingest.loader import write_report
    from layers.feeds import get_feed

    try:
        spec = get_feed(feed)
    except KeyError as exc:
        console.print(f"[red]error:[/] {exc.args[0]}", highlight=False)
        raise typer.Exit(1) from exc
    directory = ingest_settings().report_dir
    engine = _engine()
    try:
        rep = load_feed(
            engine,
            spec,
            path,
            source=source,
            field_map=parse_field_options(field or []),
            strict=strict,
        )
    except StrictIngestFailed as exc:
        engine.dispose()
        if exc.report is not None:
            where = write_report(exc.report, report, directory=directory, stem=feed)
            console.print(f"report: {where}", highlight=False)
        _fail(exc)
    except GisServerError as exc:
        engine.dispose()
        _fail(exc)
    try:
        record_ingest(engine, "feed", feed, rep)
        if feed == "inspection_problems":
            _warn_unstored_photos(engine, rep.source)
    finally:
        engine.dispose()
    if rep.kept_in_extra:
        console.print(f"kept in extra: {', '.join(rep.kept_in_extra)}", highlight=False)
    where = write_report(rep, report, directory=directory, stem=feed)
    out.print(rep.summary(), soft_wrap=True, highlight=False)
    console.print(f"report: {where}", highlight=False)


def _warn_unstored_photos(engine, source: str) -> None:
    """Problems whose photo is not stored yet: accepted (photos may come
    later), said so."""
    from models.supervision.inspections import unstored_photos

    with engine.connect() as conn:
        missing = unstored_photos(conn, source)
    if missing:
        shown = ", ".join(f"{i}/{n} ({sha[:12]})" for i, n, sha in missing[:10])
        more = f" and {len(missing) - 10:,} more" if len(missing) > 10 else ""
        console.print(
            f"[yellow]warning:[/] {len(missing):,} problem(s) name a photo not "
            f"stored yet: {shown}{more}; upload them (POST /supervision/evidence)",
            highlight=False,
        )


# -- supervision ----------------------------------------------------------------


@supervision_app.command("rules")
def rules_command(
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
) -> None:
    """List the rules: id, title, source, confidence, thresholds (current values,
    marked * where an administrator's override is in force)."""
    from gis_server import overrides
    from models.supervision.engine import domain_settings, load_domains
    from models.supervision.rules import RULES

    _engine().dispose()  # reads the overrides in force
    load_domains()
    table = Table("rule", "title", "source", "conf.", "thresholds")
    shown = 0
    for rule in sorted(RULES.values(), key=lambda r: r.id):
        if domain and rule.domain != domain:
            continue
        values = domain_settings(rule.domain)
        overridden = (
            overrides.current(overrides.group_name(type(values)))
            if values is not None
            else {}
        )
        thresholds = "\n".join(
            f"{name}={_threshold(values, name)}" + ("*" if name in overridden else "")
            for name in rule.settings
        )
        table.add_row(
            rule.id,
            f"{rule.title} ({rule.title_zh})",
            rule.source,
            f"[{rule.confidence}]",
            thresholds,
        )
        shown += 1
    if not shown:
        console.print(f"[red]error:[/] no rules for domain {domain!r}", highlight=False)
        raise typer.Exit(1)
    out.print(table)
    if any(overrides.current(g) for g in overrides.GROUPS):
        out.print("* overridden at run time (gis-server settings list)")


def _threshold(values: Any, name: str) -> str:
    if values is None or not hasattr(values, name):
        return "?"
    value = getattr(values, name)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


@supervision_app.command("evaluate")
def evaluate_command(
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Only these domains.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluation date (default today).")
    ] = None,
) -> None:
    """Evaluate the rules, raise their warnings and escalate overdue ones."""
    from models.supervision.engine import LOCAL_TZ, evaluate

    day = dt.date.fromisoformat(as_of) if as_of else dt.datetime.now(LOCAL_TZ).date()
    results = _run(evaluate, day, domain or None, _actor())
    table = Table("domain", "new", "updated", "unchanged")
    for name, res in results.items():
        table.add_row(name, f"{res.new:,}", f"{res.updated:,}", f"{res.unchanged:,}")
    out.print(table)


# -- warnings -------------------------------------------------------------------


@warnings_app.command("list")
def warnings_list(
    responsible: Annotated[str | None, typer.Option(help="Responsible party.")] = None,
    state: Annotated[
        str | None, typer.Option(help="raised, dispatched, rectified or closed.")
    ] = None,
    domain: Annotated[str | None, typer.Option(help="Domain.")] = None,
    district: Annotated[str | None, typer.Option(help="District.")] = None,
    level: Annotated[str | None, typer.Option(help="yellow, orange or red.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--on-time", help="Only overdue / on time.")
    ] = None,
    listed: Annotated[
        bool | None,
        typer.Option(
            "--listed/--not-listed",
            help="Only supervised-listed (挂牌督办) warnings / only the others.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """List warnings, most severe and newest first."""
    from models.supervision.loop import ESCALATION_NAMES, list_warnings

    rows = _run(
        list_warnings,
        responsible=responsible,
        state=state,
        domain=domain,
        district=district,
        level=level,
        overdue=overdue,
        listed=listed,
        limit=limit,
    )
    table = Table(
        "id",
        "level",
        "state",
        "listed",
        "rule",
        "subject",
        "responsible",
        "deadline",
        "escalation",
        "summary",
    )
    for w in rows:
        state_text = w["state"] + (" OVERDUE" if w["overdue"] else "")
        table.add_row(
            str(w["id"]),
            w["level"],
            state_text,
            "挂牌督办" if w["listed"] else "",
            w["rule"],
            w["subject_id"],
            _fmt(w["responsible"]),
            _fmt(w["deadline"]),
            ESCALATION_NAMES.get(w["escalation"] or 0, ""),
            w["summary"],
        )
    out.print(table)
    out.print(f"{len(rows):,} warning(s)")


@warnings_app.command("show")
def warnings_show(
    warning_id: Annotated[int, typer.Argument(help="Warning id.")],
) -> None:
    """One warning with its whole history."""
    from models.supervision.loop import ESCALATION_NAMES, get_warning

    w = _run(get_warning, warning_id)
    for key in (
        "id",
        "rule",
        "domain",
        "level",
        "state",
        "subject_layer",
        "subject_id",
        "summary",
        "responsible",
        "district",
        "period",
        "raised_at",
        "dispatched_at",
        "deadline",
        "rectified_at",
        "closed_at",
        "overdue",
        "source_standard",
        "located",
        "listed",
    ):
        out.print(f"{key:>16}: {_fmt(w[key])}", highlight=False)
    out.print(f"{'escalation':>16}: {ESCALATION_NAMES.get(w['escalation'] or 0)}")
    out.print(
        f"{'evidence':>16}: {json.dumps(w['evidence'], ensure_ascii=False)}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("at", "actor", "action", "from", "to", "note", "files", "deadline")
    for e in w["events"]:
        files = ", ".join(f"{f['name']} ({f['sha256'][:12]})" for f in e["evidence"])
        table.add_row(
            _fmt(e["at"]),
            e["actor"],
            e["action"],
            _fmt(e["from_state"]),
            _fmt(e["to_state"]),
            _fmt(e["note"]),
            files,
            _fmt(e["deadline"]),
        )
    out.print(table)


@warnings_app.command("dispatch")
def warnings_dispatch(
    warning_id: Annotated[int, typer.Argument(help="Warning id.")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Responsible party (default: the finding's)."),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(help="Deadline, ISO date or date-time (default: by level)."),
    ] = None,
    note: Annotated[str, typer.Option(help="Rectification measures.")] = "",
) -> None:
    """Dispatch a raised warning to its responsible party with a deadline."""
    from models.supervision.loop import dispatch

    _allowed("warnings.dispatch")
    w = _run(dispatch, warning_id, _actor(), to, _time(deadline, end_of_day=True), note)
    out.print(
        f"warning {warning_id} dispatched to {w['responsible']}, due {w['deadline']}",
        highlight=False,
    )


@warnings_app.command("rectify")
def warnings_rectify(
    warning_id: Annotated[int, typer.Argument(help="Warning id.")],
    note: Annotated[str, typer.Option(help="The responsible party's reply.")],
    photo: Annotated[
        list[Path],
        typer.Option(
            "--photo", help="Evidence file: JPEG, PNG, WebP or PDF (repeatable)."
        ),
    ],
) -> None:
    """Record the rectification reply with its evidence files."""
    from models.supervision.evidence import read_upload, store_evidence
    from models.supervision.loop import rectify
    from models.supervision.settings import loop_settings

    _allowed("warnings.rectify")
    settings = loop_settings()
    for p in photo:
        if not p.is_file():
            console.print(f"[red]error:[/] no such file: {p}", highlight=False)
            raise typer.Exit(1)

    def read(path: Path) -> bytes:
        with path.open("rb") as fh:
            return read_upload(fh, settings)

    def step(conn):
        refs = [store_evidence(conn, read(p), p.name, None, settings) for p in photo]
        return rectify(conn, warning_id, _actor(), note, refs)

    _run(step)
    out.print(f"warning {warning_id} rectified with {len(photo)} file(s)")


@warnings_app.command("verify")
def warnings_verify(
    warning_id: Annotated[int, typer.Argument(help="Warning id.")],
    accept: Annotated[
        bool,
        typer.Option("--accept/--reject", help="Close it (销号) or send it back."),
    ],
    note: Annotated[str, typer.Option(help="Remark; the reason when rejecting.")] = "",
    deadline: Annotated[
        str | None,
        typer.Option(help="New deadline when rejecting (default: by level)."),
    ] = None,
) -> None:
    """Verify a rectification: accept (close) or reject (send back); not by
    whoever recorded it (four-eyes rule)."""
    from models.supervision.loop import verify

    _allowed("warnings.verify")
    w = _run(
        verify,
        warning_id,
        _actor(),
        accept,
        note,
        deadline=_time(deadline, end_of_day=True),
    )
    if accept:
        out.print(f"warning {warning_id} closed (销号)")
    else:
        out.print(
            f"warning {warning_id} sent back, due {w['deadline']}", highlight=False
        )


@warnings_app.command("escalate")
def warnings_escalate(
    now: Annotated[
        str | None, typer.Option(help="Time to judge overdue at (default: now).")
    ] = None,
) -> None:
    """Escalate every overdue warning by one level (督办 -> 约谈 -> 通报)."""
    from models.supervision.loop import escalate_overdue

    _allowed("warnings.escalate")
    at = _time(now) or dt.datetime.now(dt.UTC)
    ids = _run(escalate_overdue, at, _actor())
    out.print(
        f"{len(ids):,} warning(s) escalated"
        + (f": {', '.join(map(str, ids))}" if ids else "")
    )


@warnings_app.command("rank")
def warnings_rank(
    by: Annotated[
        str, typer.Argument(help="district, responsible, domain or rule.")
    ] = "district",
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
) -> None:
    """Counts per district / party / domain / rule, most open first."""
    from models.supervision.loop import rankings

    rows = _run(rankings, by, state)
    if not rows:
        out.print("no warnings")
        return
    columns = [c for c in rows[0] if c != "key"]
    table = Table(by, *columns)
    for r in rows:
        table.add_row(_fmt(r["key"]), *(f"{r[c]:,}" for c in columns))
    out.print(table)
