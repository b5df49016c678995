"""The ``gis-server`` command line.

Verbs are public interface: ``db start|stop|status|upgrade``, ``demo``,
``serve``, ``ingest LAYER PATH``, ``ingest raster NAME PATH``, ``layers``.
Every failure ends with a non-zero exit and one line saying why.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis_server import logs
from gis_server.cli_access import guard
from gis_server.cli_risk import risk_app
from gis_server.cli_settings import settings_app
from gis_server.cli_supervision import (
    ingest_feed_command,
    supervision_app,
    warnings_app,
)
from gis_server.cli_users import audit_command, users_app
from gis_server.cli_water import (
    ingest_observations_command,
    patrols_app,
    predict_app,
)
from gis_server.errors import GisServerError, StrictIngestFailed
from gis_server.settings import (
    database_settings,
    ingest_settings,
    server_settings,
)
from layers import LayerSpec, all_layers

log = logging.getLogger("gis_server.cli")
console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="gis-server",
    help="Geospatial monitoring server for city supervision (PostGIS, OGC API).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="The database: embedded cluster and migrations.", no_args_is_help=True
)
ingest_app = typer.Typer(
    help="Load files into layers (GeoJSON, GeoPackage, Shapefile, zipped "
    "Shapefile, CSV with lon/lat or WKT) or register a GeoTIFF raster.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")
app.add_typer(risk_app, name="risk")
app.add_typer(predict_app, name="predict")
app.add_typer(patrols_app, name="patrols")
app.add_typer(supervision_app, name="supervision")
app.add_typer(warnings_app, name="warnings")
app.add_typer(users_app, name="users")
app.add_typer(settings_app, name="settings")
app.command("audit")(audit_command)


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging.")
    ] = False,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Run the command with this account's scope (what it may read "
            "and edit), as the API would: the policy checks the command and "
            "every database connection runs under the account's role; "
            "default: the server's own, unscoped.",
        ),
    ] = None,
) -> None:
    # Commands report through their own output; the log shows warnings and
    # errors unless -v. ``serve`` switches to the server's log level.
    settings = server_settings()
    logs.configure("DEBUG" if verbose else "WARNING", json_lines=settings.log_json)
    from gis_server.auth import dbsecurity
    from gis_server.auth.principal import CURRENT

    # the server's own scope unless --as; undone when the command ends (the
    # CLI may run inside another program, tests)
    token = CURRENT.set(None)
    dbsecurity.pin(None)

    def _unscope() -> None:
        dbsecurity.pin(None)
        CURRENT.reset(token)

    ctx.call_on_close(_unscope)
    if as_user:
        from gis_server.auth import accounts

        engine = _engine()
        try:
            with engine.connect() as conn:
                account = accounts.get_user(conn, as_user)
        finally:
            engine.dispose()
        if account.disabled:
            raise typer.BadParameter(f"user {as_user!r} is disabled", param_hint="--as")
        principal = account.principal("cli")
        CURRENT.set(principal)
        # every connection the command opens (raw ones and worker threads'
        # too) runs as the account's database role
        dbsecurity.pin(principal)


def _engine(*, start: bool = True):
    """Engine on the configured database, starting the embedded one if needed."""
    from gis_server import db

    settings = database_settings()
    engine = db.open_engine(settings) if start else db.make_engine(settings)
    from gis_server import overrides

    overrides.load(engine)  # rule settings in force for what the command runs
    return engine


# -- db ----------------------------------------------------------------------


@db_app.command("start")
def db_start() -> None:
    """Create (first time) and start the embedded PostgreSQL + PostGIS cluster."""
    settings = database_settings()
    if not settings.embedded:
        out.print("DATABASE_URL is set: the embedded cluster is not used.")
        return
    from gis_server.embedded import EmbeddedCluster

    status = EmbeddedCluster(settings).start()
    out.print(f"embedded cluster running (pid {status.pid}) at {status.url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    settings = database_settings()
    if not settings.embedded:
        out.print("DATABASE_URL is set: there is no embedded cluster to stop.")
        return
    from gis_server.embedded import EmbeddedCluster

    EmbeddedCluster(settings).stop()
    out.print("embedded cluster stopped")


@db_app.command("status")
def db_status() -> None:
    """Say where the database is, whether it runs, and its schema revision."""
    from gis_server import db

    settings = database_settings()
    if settings.embedded:
        from gis_server.embedded import EmbeddedCluster

        status = EmbeddedCluster(settings).status()
        state = (
            "running"
            if status.running
            else ("stopped" if status.initialised else "not created yet")
        )
        out.print(
            f"embedded cluster: {state}; data {status.data_dir}; url {status.url}"
        )
        if not status.running:
            raise typer.Exit(3)
    engine = db.make_engine(settings)
    try:
        revision = db.current_revision(engine)
    except Exception as exc:
        raise GisServerError(f"database unreachable: {exc.__class__.__name__}") from exc
    finally:
        engine.dispose()
    out.print(f"schema revision: {revision or 'none (run gis-server db upgrade)'}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Apply database migrations (starting the embedded cluster if needed)."""
    from gis_server import db

    url = db.ensure_database(database_settings())
    db.upgrade(url, revision)
    out.print(f"database upgraded to {revision}")


# -- ingest ------------------------------------------------------------------


def _write_report(report, path: Path | None) -> Path:
    from ingest.loader import write_report

    return write_report(
        report, path, directory=ingest_settings().report_dir, stem=report.layer
    )


def _print_report(report, report_path: Path, shown: int = 3) -> None:
    """Notes, then the issues grouped by reason with a few example rows each."""
    from collections import defaultdict

    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if report.kept_in_extra:
        console.print(
            f"kept in extra: {', '.join(report.kept_in_extra)}", highlight=False
        )
    if report.issues:
        groups: dict[tuple[str, str], list] = defaultdict(list)
        for issue in report.issues:
            groups[(issue.action, issue.reason)].append(issue)
        table = Table(
            "action",
            "rows",
            "reason",
            "e.g. row (source id)",
            title="rows needing attention",
        )
        for (action, reason), issues in sorted(
            groups.items(), key=lambda g: -len(g[1])
        ):
            examples = ", ".join(f"{i.row} ({i.source_id})" for i in issues[:shown])
            table.add_row(action, f"{len(issues):,}", reason, examples)
        console.print(table)
    console.print(f"report: {report_path}", highlight=False)


def _ingest_layer(
    spec: LayerSpec,
    path: Path,
    *,
    crs: str | None,
    source: str | None,
    fields: list[str],
    id_field: str | None,
    layer: str | None,
    lon_field: str | None,
    lat_field: str | None,
    wkt_field: str | None,
    strict: bool,
    sync: bool,
    report_path: Path | None,
    progress: bool,
    refresh: bool = True,
) -> None:
    from ingest.fields import parse_field_options
    from ingest.loader import load_batch
    from ingest.readers import read_file

    field_map = parse_field_options(fields)
    progress = progress and console.is_terminal
    with (
        console.status(f"reading {path.name}", spinner="dots") if progress else _null()
    ):
        batch = read_file(
            path,
            crs=crs,
            layer=layer,
            id_field=id_field,
            id_aliases=spec.id_aliases,
            lon_field=lon_field,
            lat_field=lat_field,
            wkt_field=wkt_field,
        )
    engine = _engine()
    try:
        report = load_batch(
            engine,
            spec,
            batch,
            source=source or path.name,
            field_map=field_map,
            strict=strict,
            sync=sync,
            progress=progress,
            chunk_size=ingest_settings().chunk_size,
        )
    except StrictIngestFailed as exc:
        if exc.report is not None:
            _print_report(exc.report, _write_report(exc.report, report_path))
        raise
    finally:
        engine.dispose()
    where = _write_report(report, report_path)
    _print_report(report, where)
    out.print(report.summary(), soft_wrap=True)
    _audit_ingest("layer", spec.id, report)
    if refresh and (report.inserted or report.updated or report.deleted):
        from gis_server.auth import dbsecurity

        if dbsecurity.pinned() is not None:
            # as through the API: the zones the change touches are flagged
            # stale; recomputing them is the server's own work
            out.print(
                "risk zones touched are marked stale until the next "
                "`gis-server risk refresh` (run by the server, without --as)",
                soft_wrap=True,
            )
        else:
            _refresh_risk(spec)


def _audit_ingest(kind: str, target: str, report) -> None:
    from gis_server import audit

    engine = _engine(start=False)
    try:
        audit.record_ingest(engine, kind, target, report)
    finally:
        engine.dispose()


def _refresh_risk(spec: LayerSpec) -> None:
    """Recompute the risk zones an ingest touched (once zones have been computed)."""
    from models.risk.service import KIND_LAYERS, refresh
    from models.risk.service import status as risk_status
    from models.risk.settings import RiskSettings

    if not any(spec.id in layers for layers in KIND_LAYERS.values()):
        return
    engine = _engine(start=False)
    try:
        if not risk_status(engine).get("runs"):
            return  # no zones yet: nothing to keep current
        result = refresh(engine, RiskSettings())
    finally:
        engine.dispose()
    changed = sum(run.inserted + run.updated + run.deleted for run in result.kinds)
    out.print(
        f"risk zones refreshed: {changed} changed in {result.seconds:.1f} s",
        soft_wrap=True,
    )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _make_ingest_command(spec: LayerSpec):
    props = ", ".join(p.name for p in spec.properties)

    def command(
        path: Annotated[Path, typer.Argument(help="File to load.")],
        crs: Annotated[
            str | None,
            typer.Option(
                help="CRS of the coordinates when the file is wrong or silent: an EPSG "
                "code (4490 for CGCS2000) or gcj02 for Chinese web-map exports."
            ),
        ] = None,
        source: Annotated[
            str | None,
            typer.Option(
                help="Source name keying the upsert (default: the file name)."
            ),
        ] = None,
        field: Annotated[
            list[str] | None,
            typer.Option(
                "--field",
                help="Map a source field to a property: SRC=PROPERTY (repeatable).",
            ),
        ] = None,
        id_field: Annotated[
            str | None, typer.Option(help="Field holding the source's feature id.")
        ] = None,
        layer: Annotated[
            str | None,
            typer.Option(help="Layer inside a multi-layer file (GeoPackage)."),
        ] = None,
        lon_field: Annotated[
            str | None, typer.Option(help="CSV longitude column.")
        ] = None,
        lat_field: Annotated[
            str | None, typer.Option(help="CSV latitude column.")
        ] = None,
        wkt_field: Annotated[str | None, typer.Option(help="CSV WKT column.")] = None,
        strict: Annotated[
            bool, typer.Option(help="Write nothing if any row is rejected.")
        ] = False,
        sync: Annotated[
            bool,
            typer.Option(
                help="Also delete features of this source that the file no longer has."
            ),
        ] = False,
        report: Annotated[
            Path | None,
            typer.Option(
                help="Write the report here (.json or .csv; default var/reports/)."
            ),
        ] = None,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
        refresh: Annotated[
            bool,
            typer.Option(
                help="Recompute the risk zones the change touches (when zones "
                "have been computed before)."
            ),
        ] = True,
    ) -> None:
        _ingest_layer(
            spec,
            path,
            crs=crs,
            source=source,
            fields=field or [],
            id_field=id_field,
            layer=layer,
            lon_field=lon_field,
            lat_field=lat_field,
            wkt_field=wkt_field,
            strict=strict,
            sync=sync,
            report_path=report,
            progress=progress,
            refresh=refresh,
        )

    command.__doc__ = (
        f"Load a file into {spec.title.lower()} ({spec.title_zh}). Properties: {props}."
    )
    return command


for _spec in all_layers():
    if not _spec.computed:
        ingest_app.command(_spec.id)(_make_ingest_command(_spec))


ingest_app.command("observations")(ingest_observations_command)
ingest_app.command("feed")(ingest_feed_command)


@ingest_app.command("raster")
def ingest_raster(
    name: Annotated[str, typer.Argument(help="Name of the raster layer.")],
    path: Annotated[Path, typer.Argument(help="GeoTIFF to register.")],
    crs: Annotated[str | None, typer.Option(help="CRS when the file has none.")] = None,
    in_place: Annotated[
        bool, typer.Option(help="Keep the file where it is instead of copying it.")
    ] = False,
) -> None:
    """Register a GeoTIFF as a named raster layer."""
    from ingest.raster import register_raster

    engine = _engine()
    try:
        info = register_raster(
            engine,
            name,
            path,
            raster_dir=ingest_settings().raster_dir,
            crs=crs,
            in_place=in_place,
        )
    finally:
        engine.dispose()
    out.print(info.summary())
    out.print(f"stored at {info.path}")


# -- layers, demo, serve -------------------------------------------------------


def _visible_layers() -> list[LayerSpec]:
    """Every layer, or those the ``--as`` account may read."""
    from gis_server.auth import policy
    from gis_server.auth.principal import CURRENT

    principal = CURRENT.get()
    return (
        list(all_layers()) if principal is None else policy.readable_layers(principal)
    )


@app.command("layers")
def list_layers() -> None:
    """List the layers with their feature counts and data versions."""
    from sqlalchemy import text

    engine = _engine()
    table = Table("id", "title", "geometry", "features", "version")
    try:
        with engine.connect() as conn:
            versions = dict(
                conn.execute(text("SELECT layer_id, version FROM layer_versions")).all()
            )
            for spec in _visible_layers():
                count = conn.execute(
                    text(f"SELECT count(*) FROM {spec.table}")
                ).scalar()
                table.add_row(
                    spec.id,
                    f"{spec.title} ({spec.title_zh})",
                    "/".join(spec.geometry_types),
                    f"{count:,}",
                    str(versions.get(spec.id, 0)),
                )
    finally:
        engine.dispose()
    out.print(table)


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    out.print(f"serving on {url} (Ctrl-C to stop)")
    out.print(
        f"  maps: {url}maps (river chief, housing, supervision, analyst; sign in "
        "first)\n"
        f"  OGC API: {url}collections  tiles: {url}tiles/buildings/tilejson.json",
        soft_wrap=True,
    )
    uvicorn.run(
        "gis_server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    upgrade: Annotated[
        bool, typer.Option(help="Apply pending migrations before serving.")
    ] = True,
) -> None:
    """Serve the OGC API, tiles and maps."""
    from gis_server import db

    settings = server_settings()
    logs.configure(settings.log_level, json_lines=settings.log_json)
    url = db.ensure_database(database_settings())
    if upgrade:
        db.upgrade(url)
    _serve(host or settings.host, port or settings.port, workers)


@app.command("demo")
def demo(
    buildings: Annotated[
        int, typer.Option(help="Number of buildings to generate.")
    ] = 50_000,
    seed: Annotated[
        int, typer.Option(help="Random seed of the synthetic city.")
    ] = 20261203,
    serve_after: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve the demo after loading it."),
    ] = True,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Generate the synthetic Guangzhou-like demo city, load it, and serve it."""
    from gis_server import db
    from ingest.demo_city import generate_city
    from ingest.loader import load_batch
    from layers import get_layer

    settings = server_settings()
    url = db.ensure_database(database_settings())
    db.upgrade(url)
    engine = db.make_engine(database_settings())
    started = time.perf_counter()
    try:
        with console.status(f"generating a city of {buildings:,} buildings"):
            city = generate_city(buildings=buildings, seed=seed)
        known = {spec.id for spec in all_layers()}
        for layer_id, batch in city.items():
            if layer_id not in known:
                log.warning(
                    "demo layer not declared; skipped", extra={"layer": layer_id}
                )
                continue
            report = load_batch(
                engine,
                get_layer(layer_id),
                batch,
                source="demo",
                sync=True,
                progress=console.is_terminal,
            )
            out.print(report.summary(), soft_wrap=True)
            if report.rejected:
                raise GisServerError(
                    f"demo data for {layer_id} had {report.rejected} rejected rows: "
                    f"{report.issues[0].reason}"
                )
        _demo_computations(engine)
        _demo_supervision(engine, seed)
        accounts = _demo_accounts(engine)
    finally:
        engine.dispose()
    out.print(
        f"demo city loaded in {time.perf_counter() - started:.0f} s "
        "(synthetic data, generated by this project)"
    )
    _print_accounts(accounts, host or settings.host, port or settings.port)
    if serve_after:
        logs.configure(settings.log_level, json_lines=settings.log_json)
        _serve(host or settings.host, port or settings.port, 1)


def _demo_supervision(engine, seed: int) -> None:
    """The five supervision systems' demo records, their warnings and loops."""
    from ingest.demo_city import AS_OF
    from ingest.loader import load_batch
    from layers import get_layer
    from models.supervision.concrete import credit_scores
    from models.supervision.demo import load_demo
    from models.supervision.fund import demo_centres

    with console.status("supervision: records, rules, warnings, loops"):
        started = time.perf_counter()
        load_batch(
            engine, get_layer("fund_centres"), demo_centres(), source="demo", sync=True
        )
        summary = load_demo(engine, seed, AS_OF)
        with engine.begin() as conn:
            credit_scores(conn, AS_OF)
    records = sum(f["inserted"] + f["updated"] for f in summary["feeds"].values())
    states = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["states"].items()))
    out.print(
        f"supervision: {records:,} records in {len(summary['feeds'])} feeds, "
        f"warnings {states}, {summary['overdue']:,} overdue in "
        f"{time.perf_counter() - started:.1f} s",
        soft_wrap=True,
    )


#: The demo's accounts: (user name, role, what its scope is taken from).
DEMO_ACCOUNTS = (
    ("demo-admin", "admin"),
    ("demo-analyst", "analyst"),
    ("demo-housing", "housing_officer"),
    ("demo-chief", "river_chief"),
)


def _demo_accounts(engine) -> list[dict]:
    """One account per role, with a fresh random password each demo run (kept
    in ``var/demo-accounts.txt``, readable by its owner only)."""
    import secrets

    from sqlalchemy import text

    from gis_server import audit
    from gis_server.auth import accounts
    from gis_server.settings import PROJECT_ROOT

    actor = audit.Actor("cli:demo", "admin", client="cli")
    rows = []
    with engine.begin() as conn:
        district = conn.execute(
            text(
                "SELECT district FROM layer_buildings WHERE district IS NOT NULL "
                "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            )
        ).scalar()
        chief = conn.execute(
            text(
                "SELECT chief_id FROM layer_rivers WHERE chief_id IS NOT NULL "
                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            )
        ).scalar()
        for name, role in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(9)
            scope = {"district": district} if role == "housing_officer" else {}
            if role == "river_chief":
                scope = {"chief_id": chief}
            try:
                accounts.get_user(conn, name)
                accounts.set_password(conn, name, password)
            except GisServerError:
                accounts.add_user(conn, name, role, password, **scope)
                audit.record(conn, actor, "user.add", "user", name, after=scope)
            rows.append({"user": name, "role": role, "password": password, **scope})
    path = PROJECT_ROOT / "var" / "demo-accounts.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(
        "".join(f"{r['user']}\t{r['role']}\t{r['password']}\n" for r in rows)
    )
    return rows


def _print_accounts(rows: list[dict], host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    pages = {
        "admin": "/maps/supervision",
        "analyst": "/maps/analyst",
        "housing_officer": "/maps/housing",
        "river_chief": "/maps/river-chief",
    }
    out.print("demo accounts (one per role):")
    for r in rows:
        scope = r.get("district") or r.get("chief_id") or "all layers"
        out.print(
            f"  {r['role']:<16} {r['user']:<13} password {r['password']:<13} "
            f"scope {scope:<10} {base}/auth/login?next={pages[r['role']]}",
            soft_wrap=True,
            highlight=False,
        )
    out.print(
        "Sign in with one of these demo accounts (passwords are new on every "
        "demo run; also in var/demo-accounts.txt). Scripts and QGIS: "
        "gis-server users key demo-analyst, then send the key as the X-API-Key "
        "header or the api_key parameter. GIS_AUTH_ANONYMOUS=read opens every "
        "layer read-only without signing in.",
        soft_wrap=True,
    )


def _demo_computations(engine) -> None:
    """Risk zones, simulated readings, warnings and patrols for the demo city.

    The readings and inspection labels are simulated (synthetic data, like the
    city); the model is trained on them and scores every segment.
    """
    import datetime as dt

    from models.risk.service import compute
    from models.risk.settings import RiskSettings
    from models.water import service as water
    from models.water.network import network_from_database
    from models.water.settings import WaterSettings
    from models.water.simulate import simulate

    with console.status("computing risk zones"):
        result = compute(engine, RiskSettings())
    zones = sum(run.zones for run in result.kinds)
    out.print(f"risk zones: {zones:,} in {result.seconds:.1f} s", soft_wrap=True)
    with console.status("simulating water quality, training, scoring"):
        started = time.perf_counter()
        settings = WaterSettings()
        sim = simulate(network_from_database(engine), seed=0)
        stored = water.write_simulation(engine, sim, label_fraction=0.2, seed=0)
        water.train_from_database(engine, settings, sim.now, seed=0)
        counts = water.score_database(engine, settings, sim.now)
        tasks = water.plan_patrols(
            engine,
            settings,
            sim.now,
            period_start=sim.now.date(),
            period_end=sim.now.date() + dt.timedelta(days=9),
        )
    out.print(
        f"water quality: {stored['readings']:,} simulated readings, warnings "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f", {len(tasks):,} patrol tasks in {time.perf_counter() - started:.1f} s",
        soft_wrap=True,
    )


# every command passes the --as policy first (gis_server/cli_access.py)
guard(app)


def main() -> None:
    """Entry point: run the CLI, turning known errors into one line and exit 1."""
    try:
        app()
    except GisServerError as exc:
        console.print(
            f"[red]error:[/] {exc.description}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            console.print(
                "[red]error:[/] cannot reach the database "
                f"({database_settings().effective_url().split('@')[-1]}): "
                f"{str(exc.orig).strip().splitlines()[0]}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        log.exception("unexpected error")
        console.print(
            f"[red]error:[/] {exc.__class__.__name__}: {exc}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
