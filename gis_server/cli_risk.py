"""``gis-server risk``: compute, refresh and inspect the risk zones and grid."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis_server.settings import database_settings

out = Console()

risk_app = typer.Typer(
    help="Risk zones (dangerous buildings, curtain walls, river pressure) and the "
    "composite risk grid with hot spots and a GeoTIFF.",
    no_args_is_help=True,
)

KindOption = Annotated[
    list[str] | None,
    typer.Option("--kind", "-k", help="dangerous_building, curtain_wall or "
                 "river_pressure; repeat for several (default: all)."),
]
TodayOption = Annotated[
    dt.datetime | None,
    typer.Option("--today", formats=["%Y-%m-%d"],
                 help="Date the curtain-wall schedules are judged on "
                 "(default: today in Guangzhou)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RasterOption = Annotated[bool, typer.Option("--raster/--no-raster",
                                            help="Write the GeoTIFF.")]


def _engine():
    from gis_server import db, overrides

    engine = db.open_engine(database_settings())
    overrides.load(engine)  # the risk settings in force (GIS_RISK_* + overrides)
    return engine


def _print_report(report, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(report.as_dict(), default=str))
        return
    table = Table("kind", "mode", "recomputed", "zones", "inserted", "updated",
                  "deleted", "seconds")
    for run in report.kinds:
        table.add_row(run.kind, run.mode, str(run.candidates), str(run.zones),
                      str(run.inserted), str(run.updated), str(run.deleted),
                      f"{run.seconds:.1f}")
    out.print(table)
    if not report.kinds:
        out.print("nothing to recompute")
    if report.grid:
        g = report.grid
        out.print(f"grid: {g.cells} cells in the study area, {g.scored} scored, "
                  f"{g.hot} hot / {g.cold} cold spots, {g.written} rewritten, "
                  f"{g.deleted} removed; raster {g.raster or 'not written'}")
    out.print(f"done in {report.seconds:.1f} s "
              f"({report.dirty_consumed} queued changes consumed)")


@risk_app.command("compute")
def compute_cmd(kind: KindOption = None, today: TodayOption = None,
                raster: RasterOption = True, as_json: JsonOption = False) -> None:
    """Recompute zones in full (all kinds or --kind), then the grid and raster."""
    from models.risk import RiskSettings, compute

    engine = _engine()
    try:
        report = compute(engine, RiskSettings(), kind,
                         today=today.date() if today else None, write_raster=raster)
    finally:
        engine.dispose()
    _print_report(report, as_json)


@risk_app.command("refresh")
def refresh_cmd(today: TodayOption = None, raster: RasterOption = True,
                as_json: JsonOption = False) -> None:
    """Recompute only the zones touched by source edits since the last run."""
    from models.risk import RiskSettings, refresh

    engine = _engine()
    try:
        report = refresh(engine, RiskSettings(),
                         today=today.date() if today else None, write_raster=raster)
    finally:
        engine.dispose()
    _print_report(report, as_json)


@risk_app.command("status")
def status_cmd(as_json: JsonOption = False) -> None:
    """Zones by kind and level, stale zones, queued changes, last runs."""
    from models.risk import status

    engine = _engine()
    try:
        info = status(engine)
    finally:
        engine.dispose()
    if as_json:
        out.print_json(json.dumps(info, default=str))
        return
    table = Table("kind", "level", "zones", "stale")
    for row in info["zones"]:
        table.add_row(row["kind"], row["level"], str(row["zones"]), str(row["stale"]))
    out.print(table)
    queued = info["queued_changes"]
    out.print("queued changes: " + (", ".join(f"{k} {v}" for k, v in queued.items())
                                    or "none"))
    for run in info["runs"]:
        out.print(f"last {run['kind']}: {run['mode']} at {run['finished_at']}, "
                  f"{run['zones']} zones, {run['changed']} changed, "
                  f"{run['seconds']:.1f} s")
    g = info["grid"]
    out.print(f"grid: {g['cells']} cells, {g['hot']} hot, {g['cold']} cold")


@risk_app.command("settings")
def settings_cmd() -> None:
    """Every risk setting with its value, where it comes from (override, env,
    default; ``gis-server settings set risk.FIELD VALUE`` overrides one) and
    its source ([S], [R] or [D])."""
    from gis_server import overrides
    from models.risk import RiskSettings

    _engine().dispose()  # reads the overrides in force
    group = overrides.describe(overrides.group_name(RiskSettings))
    table = Table("setting (GIS_RISK_...)", "value", "from", "source / meaning")
    for f in group["fields"]:
        table.add_row(f["field"].upper(), str(f["value"]), f["source"],
                      f["description"])
    out.print(table)
    from models.wall_schedule import WallScheduleRules

    schedule = WallScheduleRules()
    table = Table("curtain-wall schedule (GIS_RULES_BUILDINGS_...)", "value",
                  "source / meaning")
    for name, info in WallScheduleRules.model_fields.items():
        table.add_row(name.upper(), str(getattr(schedule, name)),
                      info.description or "")
    out.print(table)
