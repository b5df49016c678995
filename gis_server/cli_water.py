"""``gis-server predict ...``, ``gis-server patrols ...`` and the observation ingest.

- ``predict simulate`` stores a seeded synthetic series for the stored rivers
  and stations (and inspection labels for a share of segments);
- ``predict train`` / ``predict score`` train the relapse model on the stored
  data and write the ``water_quality_warnings`` layer;
- ``predict evaluate`` compares the model with the rules-only baseline on
  held-out segments of a simulated city (the stored network or a synthetic one);
- ``patrols --chief ID`` lists a chief's tasks; ``patrols plan`` rebuilds the
  ``patrol_tasks`` layer; ``patrols record`` records a completed patrol.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis_server.errors import GisServerError, InvalidParameter, NotFound
from models.water.settings import water_settings

console = Console(stderr=True)
out = Console()

predict_app = typer.Typer(
    help="Relapse (返黑返臭) prediction and warnings.", no_args_is_help=True
)
patrols_app = typer.Typer(help="River-chief patrol tasks and records.")


def _engine():
    from gis_server import db, overrides
    from gis_server.settings import database_settings

    engine = db.open_engine(database_settings())
    overrides.load(engine)  # the water thresholds in force (GIS_WATER_* + overrides)
    return engine


def _now(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    t = dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _fail(exc: GisServerError) -> None:
    console.print(f"[red]error:[/] {exc.description}", highlight=False)
    raise typer.Exit(1) from exc


NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now", help="Time to predict at (ISO 8601; default: now; no zone = UTC+8)."
    ),
]
ImperviousOpt = Annotated[
    Path | None,
    typer.Option(
        help="Imperviousness GeoTIFF (fraction 0-1), averaged per river buffer."
    ),
]
Rain7Opt = Annotated[
    Path | None,
    typer.Option(
        help="GeoTIFF of rain over the last 7 days (mm), averaged per river buffer."
    ),
]
Rain30Opt = Annotated[
    Path | None,
    typer.Option(
        help="GeoTIFF of rain over the last 30 days (mm), averaged per river buffer."
    ),
]


@predict_app.command("simulate")
def predict_simulate(
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    days: Annotated[int, typer.Option(help="Days of history to simulate.")] = 240,
    label_fraction: Annotated[
        float, typer.Option(help="Share of segments given an inspection label.")
    ] = 0.2,
) -> None:
    """Store a synthetic reading series for the stored rivers and stations."""
    from models.water.network import network_from_database
    from models.water.service import write_simulation
    from models.water.simulate import simulate

    engine = _engine()
    net = network_from_database(engine)
    if len(net) == 0 or len(net.station_codes) == 0:
        console.print(
            "[red]error:[/] no rivers or stations stored; run "
            "`gis-server demo` or ingest them first"
        )
        raise typer.Exit(1)
    city = simulate(net, seed=seed, history_days=days)
    result = write_simulation(engine, city, label_fraction=label_fraction, seed=seed)
    out.print(
        f"simulated {result['readings']:,} readings on {len(net):,} segments, "
        f"{result['labels']:,} inspection labels; predict at "
        f"--now {city.now.isoformat()} (synthetic data)"
    )


@predict_app.command("train")
def predict_train(
    now: NowOpt = None,
    seed: int = 0,
    impervious: ImperviousOpt = None,
    rain_7d: Rain7Opt = None,
    rain_30d: Rain30Opt = None,
) -> None:
    """Train on stored readings and patrol inspection labels; save the model."""
    from models.water.service import raster_inputs, train_from_database

    engine = _engine()
    settings = water_settings()
    try:
        rasters = raster_inputs(
            engine, settings, impervious=impervious, rain_7d=rain_7d, rain_30d=rain_30d
        )
        model, path = train_from_database(
            engine, settings, _now(now), seed=seed, **rasters
        )
    except GisServerError as exc:
        _fail(exc)
    out.print(
        f"model {model.version}: {model.segments:,} segments, "
        f"{model.labelled:,} labelled -> {path}"
    )


@predict_app.command("score")
def predict_score(
    now: NowOpt = None,
    version: Annotated[
        str | None, typer.Option(help="Model version (default: newest).")
    ] = None,
    impervious: ImperviousOpt = None,
    rain_7d: Rain7Opt = None,
    rain_30d: Rain30Opt = None,
) -> None:
    """Score every segment and rewrite the water_quality_warnings layer."""
    from models.water.service import raster_inputs, score_database

    engine = _engine()
    settings = water_settings()
    try:
        rasters = raster_inputs(
            engine, settings, impervious=impervious, rain_7d=rain_7d, rain_30d=rain_30d
        )
        counts = score_database(engine, settings, _now(now), version=version, **rasters)
    except GisServerError as exc:
        _fail(exc)
    out.print("warnings: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


@predict_app.command("evaluate")
def predict_evaluate(
    segments: Annotated[
        int,
        typer.Option(
            help="Simulate a synthetic network of this many segments instead of the "
            "stored one (0 = stored network)."
        ),
    ] = 0,
    seed: int = 0,
    fractions: Annotated[
        str, typer.Option(help="Label fractions, comma-separated.")
    ] = "0.05,0.2,0.5",
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Also write the full report (reliability bins) here."
        ),
    ] = None,
) -> None:
    """Model vs rules-only baseline on held-out segments of a simulated city."""
    from models.water.evaluate import evaluate, format_rows
    from models.water.features import segment_state
    from models.water.network import network_from_database, synthetic_network
    from models.water.simulate import simulate

    net = (
        synthetic_network(segments, seed=seed)
        if segments
        else network_from_database(_engine())
    )
    settings = water_settings()
    city = simulate(net, seed=seed)
    state = segment_state(
        net,
        city.readings,
        city.now_day,
        settings,
        rain=city.rain,
        impervious=city.impervious,
    )
    rows = evaluate(
        city,
        state,
        settings,
        seed=seed,
        fractions=tuple(float(f) for f in fractions.split(",")),
    )
    out.print(f"{len(net):,} segments, simulated (synthetic data), seed {seed}")
    out.print(format_rows(rows))
    if json_out:
        json_out.write_text(json.dumps([r.__dict__ for r in rows], indent=2))


@patrols_app.callback(invoke_without_command=True)
def patrols(
    ctx: typer.Context,
    chief: Annotated[
        str | None,
        typer.Option("--chief", help="River chief id: list this chief's tasks."),
    ] = None,
) -> None:
    """A chief's patrol tasks, most urgent first (``patrols --chief ID``)."""
    if ctx.invoked_subcommand is not None:
        return
    if not chief:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from gis_server.cli_access import check
    from models.water.service import tasks_for_chief

    check(("patrols",))

    tasks = tasks_for_chief(_engine(), chief)
    if not tasks:
        console.print(f"no tasks for chief {chief!r} (run `gis-server patrols plan`)")
        raise typer.Exit(0)
    table = Table(
        "#",
        "segment",
        "level",
        "every (d)",
        "done/required",
        "due",
        "overdue",
        "reason",
        title=f"patrol tasks of {chief}",
    )
    for t in tasks:
        table.add_row(
            str(t["urgency_rank"]),
            t["segment_code"],
            t["level"],
            f"{t['interval_days']:g}",
            f"{t['patrols_done']}/{t['patrols_required']}",
            t["due_at"].strftime("%Y-%m-%d %H:%M"),
            f"{t['overdue_days']:g} d" if t["overdue"] else "",
            t["reason"],
        )
    out.print(table)


@patrols_app.command("plan")
def patrols_plan(
    now: NowOpt = None,
    days: Annotated[
        int, typer.Option(help="Period length in days, from the day of --now.")
    ] = 10,
) -> None:
    """Rebuild the patrol_tasks layer (overdue patrols become warnings)."""
    from models.water.service import plan_patrols

    t = _now(now)
    tasks = plan_patrols(
        _engine(),
        water_settings(),
        t,
        period_start=t.date(),
        period_end=t.date() + dt.timedelta(days=days - 1),
    )
    overdue = sum(task.overdue for task in tasks)
    out.print(
        f"{len(tasks):,} tasks for {len({x.chief_id for x in tasks}):,} chiefs, "
        f"{overdue:,} overdue"
    )


@patrols_app.command("record")
def patrols_record(
    chief: Annotated[str, typer.Option("--chief", help="River chief id.")],
    segment: Annotated[str, typer.Option("--segment", help="Segment code.")],
    minutes: Annotated[float, typer.Option(help="Duration in minutes.")],
    km: Annotated[float, typer.Option(help="Distance covered in km.")],
    at: Annotated[str | None, typer.Option(help="Start time (default now).")] = None,
    black_odorous: Annotated[
        bool | None,
        typer.Option(
            "--black-odorous/--clear", help="What the chief saw (inspection label)."
        ),
    ] = None,
    problems: Annotated[str | None, typer.Option(help="Problems found.")] = None,
) -> None:
    """Record a completed patrol (audited; with --as, only of a segment in
    the account's charge)."""
    from gis_server.audit import cli_actor
    from gis_server.cli_access import cli_principal
    from models.water.service import record_patrol, segment_chief

    engine = _engine()  # loads the setting overrides before they are read
    try:
        settings = water_settings()
        if cli_principal() is not None:
            # as POST /patrols: the segment must be one the account sees (the
            # database answers under its role), and the chief its chief
            found = segment_chief(engine, segment)
            if found is None:
                raise NotFound(f"no river segment {segment!r}")
            if found != chief:
                raise InvalidParameter(
                    f"segment {segment!r} is in the charge of {found!r}, not {chief!r}"
                )
        res = record_patrol(
            engine,
            settings,
            chief_id=chief,
            segment_code=segment,
            started_at=_now(at),
            duration_min=minutes,
            distance_km=km,
            black_odorous=black_odorous,
            problems=problems,
            actor=cli_actor(),
        )
    finally:
        engine.dispose()
    note = (
        ""
        if res["meets_standard"]
        else (
            f" (does not count: under {settings.patrol_min_minutes:g} min or "
            f"{settings.patrol_min_km:g} km)"
        )
    )
    out.print(f"patrol {res['id']} recorded{note}")


def ingest_observations_command(
    path: Annotated[Path, typer.Argument(help="CSV/TSV/JSON/JSONL file of readings.")],
    source: Annotated[
        str | None,
        typer.Option(help="Source name stored with each reading (default: file name)."),
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update/--keep",
            help="On a repeated (station, time, indicator): replace "
            "the stored value, or keep it and count a duplicate (default).",
        ),
    ] = False,
    strict: Annotated[
        bool, typer.Option(help="Load nothing if any row is rejected.")
    ] = False,
    check_stations: Annotated[
        bool,
        typer.Option(
            help="Reject readings of stations missing from monitoring_stations."
        ),
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write the bad-row report here (.json or .csv).")
    ] = None,
) -> None:
    """Load water-quality readings (long or wide layout) into the observation store.

    Long layout: station, time, indicator, value[, unit]. Wide layout: station,
    time and one column per indicator (do, nh3n, transparency, orp, cod, codmn,
    bod5, tp, turbidity, ph, depth, rainfall; ``depth_m`` style names give the
    unit). Times without a zone are China Standard Time (UTC+8).
    """
    from gis_server.errors import StrictIngestFailed
    from gis_server.settings import ingest_settings
    from ingest.loader import write_report
    from ingest.observations import load_observations

    try:
        rep = load_observations(
            _engine(),
            path,
            source=source,
            update=update,
            strict=strict,
            check_stations=check_stations,
        )
    except StrictIngestFailed as exc:
        _fail(exc)
    except GisServerError as exc:
        _fail(exc)
    for note in rep.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    report = write_report(
        rep, report, directory=ingest_settings().report_dir, stem="observations"
    )
    out.print(rep.summary(), soft_wrap=True, highlight=False)
    console.print(f"report: {report}", highlight=False)
    from gis_server.audit import record_ingest

    engine = _engine()
    try:
        record_ingest(engine, "observations", "water_observations", rep)
    finally:
        engine.dispose()
