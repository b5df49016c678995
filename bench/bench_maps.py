"""How long the map pages take to become interactive in a real browser.

What it does (``python bench/bench_maps.py --help``):

1. Opens the benchmark database: ``--database-url`` or an embedded cluster of
   its own under ``var/bench-maps-pgdata`` (port 55435; database
   ``maps_<buildings>``), migrated to head.
2. Unless the buildings layer is already filled, loads the synthetic demo city
   (``--buildings``, 50,000 by default, as ``gis-server demo``), computes the
   risk zones and grid (``models.risk.compute``), simulates 120 days of
   readings, trains the relapse model, scores the warnings and plans patrol
   tasks (``models.water.service``).
3. Serves the app with uvicorn in this process (no basemap: offline).
4. Opens each page ``--runs`` times in headless Debian chromium (Playwright),
   each time in a fresh browser context (empty cache), and takes the time from
   navigation start until the page is *interactive*: the document and every
   script are loaded, the map exists, and no tile layer has a tile in flight.
   Also reports the HTML size and the document's response time.
5. Prints a Markdown table and writes ``bench/out/maps.json``.

The river-chief page is opened for the chief with the most patrol tasks; the
housing page unfiltered (every grade, every district), which is its largest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from gis_server import db  # noqa: E402
from gis_server.settings import DatabaseSettings, ServerSettings  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
INTERACTIVE = """() => window.GIS && GIS.map && document.readyState === 'complete'
    && Object.values(GIS.layers).every(l => !l.idle || l.idle())"""


def open_database(args) -> DatabaseSettings:
    if args.database_url:
        return DatabaseSettings(url=args.database_url)
    # one database per city size in the cluster: ``maps_50000``, ``maps_1000000``
    settings = DatabaseSettings(url=None, data_dir=ROOT / "var" / "bench-maps-pgdata",
                                port=55435, name=f"maps_{args.buildings}")
    db.ensure_database(settings)
    db.upgrade(settings.effective_url())
    return settings


def load_city(engine: Engine, buildings: int) -> None:
    from ingest.demo_city import generate_city
    from ingest.loader import load_batch
    from layers import get_layer
    from models.risk import RiskSettings, compute
    from models.water import service as water
    from models.water.network import network_from_database
    from models.water.settings import WaterSettings
    from models.water.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="bench-maps-"))
    t0 = time.perf_counter()
    for layer_id, batch in generate_city(buildings=buildings).items():
        load_batch(engine, get_layer(layer_id), batch, source="demo", sync=True)
    print(f"demo city loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    compute(engine, RiskSettings(
        raster_path=ROOT / "var" / f"bench-maps-risk-{buildings}.tif"),
            today=dt.date(2026, 11, 30))
    net = network_from_database(engine)
    sim = simulate(net, seed=1, history_days=120)
    water.write_simulation(engine, sim, label_fraction=0.3, seed=1)
    settings = WaterSettings(model_dir=work)
    water.train_from_database(engine, settings, sim.now, seed=1)
    water.score_database(engine, settings, sim.now)
    water.plan_patrols(engine, settings, sim.now, period_start=sim.now.date(),
                       period_end=sim.now.date() + dt.timedelta(days=9))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE"))
    print(f"models computed; ready after {time.perf_counter() - t0:.0f} s", flush=True)


def measure(browser, url: str, runs: int) -> dict:
    times, server, sizes = [], [], []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []

        def on_console(msg, errors=errors) -> None:
            if msg.type == "error":
                errors.append(msg.text)

        page.on("console", on_console)
        page.goto(url, wait_until="commit")
        page.wait_for_function(INTERACTIVE, polling=20, timeout=60_000)
        ready = page.evaluate("() => performance.now()")
        nav = page.evaluate("""() => { const n = performance.getEntriesByType(
            'navigation')[0]; return [n.responseEnd, n.transferSize,
            n.decodedBodySize]; }""")
        times.append(ready)
        server.append(nav[0])
        sizes.append(nav[2])
        if errors:
            print(f"  console errors on {url}: {errors[:3]}", flush=True)
        context.close()
    return {
        "url": url,
        "runs": runs,
        "interactive_ms_median": round(statistics.median(times)),
        "interactive_ms_max": round(max(times)),
        "document_ms_median": round(statistics.median(server)),
        "html_kb": round(statistics.median(sizes) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="Use this database (never written "
                        "to unless its buildings layer is empty).")
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from gis_server.app import create_app
    from map_ui.settings import MapSettings

    settings = open_database(args)
    engine = db.make_engine(settings)
    with engine.connect() as conn:
        has_city = conn.execute(text("SELECT EXISTS (SELECT 1 FROM layer_buildings)"
                                     )).scalar()
    # (outside the transaction above: loading drops and rebuilds indexes)
    if not has_city:
        load_city(engine, args.buildings)
    with engine.connect() as conn:
        buildings = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
        chief = conn.execute(text(
            "SELECT chief_id FROM layer_patrol_tasks GROUP BY chief_id "
            "ORDER BY count(*) DESC, chief_id LIMIT 1")).scalar()
    engine.dispose()

    app = create_app(db=settings, server=ServerSettings(log_requests=False))
    app.state.map_settings = MapSettings(basemap="none")
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "river chief": f"{base}/maps/river-chief?chief={chief}",
        "housing": f"{base}/maps/housing",
        "analyst": f"{base}/maps/analyst",
    }
    results = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium,
                                         args=CHROMIUM_ARGS, headless=True)
            for name, url in pages.items():
                measure(browser, url, 1)  # warm the server (engine pool, caches)
                results[name] = measure(browser, url, args.runs)
                print(f"{name}: {results[name]}", flush=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    lines = [
        f"Map pages, demo city of {buildings:,} buildings, {args.runs} cold loads "
        "each (fresh browser context), headless chromium, no basemap:",
        "",
        "| page | interactive, median (ms) | max (ms) | document (ms) | HTML (kB) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['interactive_ms_median']} | "
                     f"{r['interactive_ms_max']} | {r['document_ms_median']} | "
                     f"{r['html_kb']} |")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "maps.json").write_text(json.dumps(
        {"buildings": buildings, "pages": results}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
