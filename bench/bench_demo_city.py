"""Demo-city generator benchmark: seconds to generate N buildings / S segments.

Times ``ingest.demo_city.generate_city`` (wall clock and process CPU, which
is what counts on a machine shared with other jobs) and, optionally, writing
the buildings to a GeoPackage.

Run: ``python bench/bench_demo_city.py [--buildings 50000 1000000]
[--segments 10000] [--write]``; results are printed and written to
bench/out/demo_city.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.demo_city import generate_city, write_city  # noqa: E402


def _timed(label: str, **kwargs: int) -> tuple[dict, dict]:
    wall, cpu = time.perf_counter(), time.process_time()
    city = generate_city(**kwargs)
    row = {
        "case": label,
        **kwargs,
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "features": {k: len(v) for k, v in city.items()},
    }
    print(f"{label:>28}: {row['wall_s']:6.2f} s wall, {row['cpu_s']:6.2f} s CPU")
    return row, city


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--write", action="store_true", help="also time write_city")
    args = parser.parse_args()

    rows = []
    for n in args.buildings:
        row, city = _timed(f"{n:,} buildings", buildings=n)
        if args.write:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                write_city({"buildings": city["buildings"]}, Path(tmp))
                row["write_gpkg_s"] = round(time.perf_counter() - started, 2)
            print(f"{'':>28}  GeoPackage written in {row['write_gpkg_s']:.2f} s")
        rows.append(row)
        del city
    if args.segments:
        row, _ = _timed(
            f"{args.segments:,} river segments", buildings=1_000, segments=args.segments
        )
        rows.append(row)

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "runs": rows,
    }
    (out / "demo_city.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
