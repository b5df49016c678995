"""Rows of record files (CSV, TSV, JSON, JSON Lines) for the record loaders.

Water-quality readings and the supervision feeds share this reader: a file
becomes a header and numbered rows, and a row that cannot be read becomes the
reason why, so the loaders report it with its row number instead of stopping.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from gis_server.errors import IngestError

#: A parsed record: a list of values in header order, or the reason it is bad.
Record = list | str


def _csv_encoding(path: Path) -> str:
    """``utf-8-sig`` when the file decodes as UTF-8, else ``gb18030``."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still UTF-8
        if exc.start < len(head) - 4:
            return "gb18030"
    return "utf-8-sig"


def rows_from_file(
    path: Path, list_keys: tuple[str, ...] = ("readings", "observations", "data")
) -> tuple[list[str], Iterator[tuple[int, Record]]]:
    """Header and (row number, values in header order) of a CSV or JSON file.

    CSV is read as UTF-8 (with or without BOM), falling back to GB18030, the
    encoding Chinese spreadsheet exports use. JSON is a list of objects, or an
    object holding that list under one of ``list_keys``; JSON Lines has one
    object per line.
    """
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        fh = path.open(newline="", encoding=_csv_encoding(path))
        reader = csv.reader(fh, dialect="excel-tab" if suffix == ".tsv" else "excel")
        try:
            header = next(reader)
        except StopIteration:
            fh.close()
            return [], iter(())
        width = len(header)

        def gen() -> Iterator[tuple[int, Record]]:
            with fh:
                for i, row in enumerate(reader, start=2):  # row 1 is the header
                    if len(row) == width:
                        yield i, row
                    else:
                        yield i, f"{len(row)} fields, header has {width}"

        return header, gen()
    if suffix in {".json", ".jsonl", ".ndjson"}:
        records: list = []
        try:
            if suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    data = next(
                        (data[k] for k in list_keys if isinstance(data.get(k), list)),
                        None,
                    )
                if not isinstance(data, list):
                    raise IngestError(f"{path.name}: expected a list of records")
                records = list(enumerate(data, 1))
            else:
                with path.open(encoding="utf-8") as fh:
                    for i, line in enumerate(fh, 1):
                        if line.strip():
                            try:
                                records.append((i, json.loads(line)))
                            except ValueError as exc:
                                records.append((i, f"bad JSON ({exc})"))
        except (OSError, ValueError) as exc:
            raise IngestError(f"{path.name}: not readable JSON ({exc})") from exc
        header: list[str] = []
        for _, rec in records:
            if isinstance(rec, dict):
                header += [k for k in rec if k not in header]

        def gen_json() -> Iterator[tuple[int, Record]]:
            for i, rec in records:
                if isinstance(rec, dict):
                    yield i, [rec.get(h) for h in header]
                else:
                    yield i, rec if isinstance(rec, str) else "not an object"

        return header, gen_json()
    raise IngestError(
        f"{path.name}: unsupported record format {suffix!r} "
        "(use .csv, .tsv, .json or .jsonl)"
    )
